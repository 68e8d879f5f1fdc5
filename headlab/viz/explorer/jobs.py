"""Long work, every kind the same way: a ``Job`` is estimated, asked about when it may take more than
``ASK_ABOVE_S`` seconds, run in a worker thread with a live counter, and cancellable.

- ``run(job, work, finished, failed)`` starts ``work(job)`` in a thread. ``work`` reports its progress through
  ``engine.progress`` (``watch(job, model)`` routes it to ``job.fraction`` and ``job.counter`` and stops the
  model's next block after *Cancel*) and returns its result; ``finished(job, result)`` stores it,
  ``failed(job, err)`` is called on an error and on a cancel (``progress.Cancelled``).
- Estimates: ``scoring.estimate`` for a map; ``curve_seconds`` and ``details_seconds`` count block-token
  passes at the model's measured rate (``scoring.throughput``) as ``estimate`` does.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np

from ... import scoring
from ...engine import progress
from ...metrics import prompt_ids
from .state import Job

__all__ = ["ASK_ABOVE_S", "DRAWS", "curve_seconds", "details_seconds", "duration", "run", "watch"]

ASK_ABOVE_S = 30.0  # a job estimated to take longer asks before it starts
DRAWS = 10  # random head sets per k of the faithfulness curve


def duration(seconds: float) -> str:
    """ "45 s", "3 min", "1.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def passes_seconds(bridge, task, n_copies: float) -> float:
    """Seconds of ``n_copies`` no-grad passes over every prompt of ``task`` on ``bridge`` (its measured rate;
    0 where the model cannot be timed here)."""
    try:
        rate = scoring.throughput(bridge, task)
    except (TypeError, ValueError):
        return 0.0
    length = float(np.mean([len(prompt_ids(bridge.tokenizer, it.prompt)) for it in task.items]))
    return n_copies * len(task.items) * length * bridge.cfg.n_layers / rate if rate else 0.0


def curve_seconds(bridge, task, n_ks: int) -> float:
    """The faithfulness curve of one map for ``task``: the clean run and, per k, the map's top k and ``DRAWS``
    random sets, each a masked pass over the task's prompts."""
    return passes_seconds(bridge, task, 1 + n_ks * (1 + DRAWS))


def details_seconds(bridge, task) -> float:
    """A head's attention pattern: one pass of one prompt."""
    return passes_seconds(bridge, task, 1.0 / max(1, len(task.items)))


@contextmanager
def watch(job: Job, model=None, at: tuple[int, int, str] = (0, 1, "")):
    """Route this thread's progress into ``job`` ("task i of n · name · done/total" for ``at`` = (i, n, name)),
    and stop ``model``'s next block once the job is cancelled."""
    i, n, name = at
    last = [0.0]

    def report(desc, done, total):
        if job.cancel.is_set():
            raise progress.Cancelled("stopped")
        now = time.monotonic()
        if now - last[0] < 0.1 and done != total:
            return
        last[0] = now
        part = done / total if total else 0.0
        job.fraction = min(1.0, (i + part) / max(n, 1))
        step = f" · {done}/{total}" if total else ""
        where = f"task {min(i + 1, n)} of {n} · " if n > 1 else ""
        job.counter = f"{where}{name or desc}{step}"

    report("", 0, 0)  # the name at once, the steps when the work reports them
    with progress.watching(report, model=model, stop=job.cancel.is_set):
        yield


def run(job: Job, work, finished, failed) -> None:
    """Run ``work(job)`` in a worker thread, then ``finished(job, result)``, or ``failed(job, err)`` (a cancel
    comes as ``progress.Cancelled``)."""

    def go():
        try:
            result = work(job)
        except Exception as err:  # shown as the message line, never a traceback
            failed(job, err)
        else:
            finished(job, result)

    job.thread = threading.Thread(target=go, daemon=True)
    job.thread.start()
