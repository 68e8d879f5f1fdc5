"""Requests: how the nnsight engine's work reaches the machine that holds the model, and how it comes back.

Each piece of a task map's work (attribution's one trace, a chunk of exact ablation's traces) is one
**request**: an nnsight session whose code runs where the model is and saves one value, ``out``.

- ``engine="nnsight"``: the session runs here, at once.
- ``engine="ndif", simulate=True``: nnsight's own simulation of NDIF (``remote="local"``) serializes the request
  as the client would send it and runs it with headlab's modules hidden, as NDIF would.
- ``engine="ndif"``: a **non-blocking NDIF job**. It is submitted, its id is written at once to the task's
  partial-result file (``Requests.keep``), and it is polled until it completes; progress shows its state
  (received, queued, running, downloading). An interrupted call (Ctrl-C, the explorer's Cancel, a closed laptop)
  keeps the ids, and the next call of the same map fetches a finished job instead of submitting it again. NDIF's
  client (nnsight 0.8.1) cannot cancel a job: an interrupted job runs to its end there, and its result waits.

Every failure is one line (``RequestError``) that says what happened and what to do — no API key, a model NDIF
does not serve, the queue or the time limit, a request too large, the network down — and nothing computed is
lost: finished tasks are in the cache, finished requests in the partial file, and submitted jobs' ids too.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

from ..errors import HeadlabError

__all__ = ["RequestError", "Requests", "client_error", "explain", "job_failed"]

POLL_SECONDS = 2.0  # between two polls of a submitted job
STATES = {  # nnsight's job states (nnsight.schema.response.Status) as progress shows them
    "RECEIVED": "received",
    "QUEUED": "queued",
    "PROVISIONING": "starting the model",
    "DEPLOYING": "starting the model",
    "DISPATCHED": "running",
    "RUNNING": "running",
    "COMPLETED": "downloading",
    "ERROR": "failed",
    "LOG": "running",
}


class RequestError(HeadlabError, RuntimeError):
    """A request to NDIF failed; the message says why and what to do, and what was kept."""


class Requests:
    """The requests of one task map. ``jobs``: label → {"id", "model_key"} of jobs submitted by an earlier call
    and not yet fetched; ``keep(jobs)``: called whenever they change (the scorer writes them to the partial file);
    ``bar``: a progress bar (tqdm's, or the explorer's watcher) whose postfix shows a job's state;
    ``forget``: drop a job's id once its result is fetched (False where the result is kept only later, with the
    task's: the id stays until then, and a call interrupted in between fetches the job again)."""

    def __init__(
        self, model, jobs: dict | None = None, keep: Callable[[dict], None] | None = None, bar=None, forget=True
    ):
        self.model, self.jobs, self.keep, self.bar, self.forget = model, dict(jobs or {}), keep, bar, forget

    def session(self):
        """The session a request's code runs in: here, nnsight's simulation of NDIF, or a non-blocking NDIF job."""
        lm, remote = self.model.lm, self.model.remote
        if remote is True:
            return lm.session(remote=True, blocking=False)
        return lm.session(remote=remote)

    def run(self, label: str, submit: Callable[[], tuple]):
        """The value a request saved as ``out``. ``submit()`` runs the request's session and returns
        ``(session, out)`` (``out``: its ``locals().get("out")``, None where the session ran elsewhere); ``label``
        names the request within the task map, the same way on every call (its job id is kept under it)."""
        if self.model.remote is not True:
            return submit()[1]
        from nnsight.intervention.backends.remote import RemoteBackend

        job = self.jobs.get(label)
        if job is None:
            try:
                session, _ = submit()
            except Exception as err:
                if not client_error(err):
                    raise
                raise RequestError(self.failure(err, label, None)) from err
            backend = session.backend
            job = {"id": backend.job_id, "model_key": backend.model_key}
            self.jobs[label] = job
            self.save()
        else:
            backend = RemoteBackend(job["model_key"], blocking=False, job_id=job["id"])
        result = self.wait(backend, label)
        if self.forget:
            del self.jobs[label]
            self.save()
        return result["out"]

    def wait(self, backend, label: str) -> dict:
        """Poll a submitted job until it completes: its saved values. Progress shows its state after every poll
        (so the explorer's Cancel takes effect within ``POLL_SECONDS``); an interruption (Ctrl-C, Cancel) leaves
        the job running there, its id kept for the next call."""
        state = _State(self.bar, backend.job_id)
        backend.display = state  # nnsight's client reports each status it receives to its display
        try:
            while True:
                state.show()
                result = backend.poll()
                if result is not None:
                    return result
                time.sleep(POLL_SECONDS)
        except BaseException as err:
            if isinstance(err, Exception) and client_error(err):
                if job_failed(err):  # fetching it again would fail again: the next call submits it anew
                    self.jobs.pop(label, None)
                    self.save()
                    raise RequestError(self.failure(err, label, backend.job_id, dropped=True)) from err
                raise RequestError(self.failure(err, label, backend.job_id)) from err
            # Ctrl-C, the explorer's Cancel: the job is left to finish there
            warnings.warn(
                f"NDIF job {backend.job_id} ({label}) was left running: NDIF's client cannot cancel it. Its id is "
                "kept in the cache, and the same call fetches its result when it is done",
                stacklevel=2,
            )
            raise

    def save(self) -> None:
        if self.keep is not None:
            self.keep(dict(self.jobs))

    def failure(self, err: BaseException, label: str, job_id: str | None, dropped: bool = False) -> str:
        """One line for a failed request: what happened, what to do, and what was kept."""
        if dropped:
            kept = f"job {job_id} failed there and is dropped: the same call submits it again; finished work is kept"
        elif job_id:
            kept = f"job {job_id} is kept: the same call fetches it"
        else:
            kept = "nothing was sent; finished work is kept"
        return f"{label}: {explain(err, self.model)}; {kept}"


def client_error(err: BaseException) -> bool:
    """Whether ``err`` came from nnsight's NDIF client (a failed job or request, the network, the Hub), not from
    headlab or the user's interruption."""
    import httpx
    from nnsight.intervention.backends.remote import RemoteError

    return isinstance(err, (RemoteError, httpx.HTTPError, ConnectionError)) or _hub_error(err)


def job_failed(err: BaseException) -> bool:
    """Whether ``err`` is a job's own failure on NDIF (its ERROR status: nnsight raises ``RemoteError`` with the
    server's description), not a failure to reach it (a ``RemoteError`` raised from an ``httpx`` error, or one)."""
    from nnsight.intervention.backends.remote import RemoteError

    return isinstance(err, RemoteError) and err.__cause__ is None


def explain(err: BaseException, model) -> str:
    """What went wrong with a request, and what to do, from the exception nnsight's client raised (``RemoteError``
    and the ``httpx`` or Hugging Face Hub error under it)."""
    import httpx
    from nnsight.intervention.backends.remote import RemoteError

    cause = err.__cause__ if isinstance(err, RemoteError) and err.__cause__ is not None else err
    name = model.repo_id or model.headlab_name
    if type(cause).__name__ == "RepositoryNotFoundError":
        return f"{name!r} is not a model on the Hugging Face Hub, which names models for NDIF: check the id"
    if _hub_error(cause):
        return (
            f"nnsight names the model for NDIF through the Hugging Face Hub, which cannot be reached "
            f"({_first_line(cause)}): go online (and unset HF_HUB_OFFLINE), then call again"
        )
    if isinstance(cause, (httpx.TransportError, ConnectionError)):
        return f"cannot reach NDIF ({_first_line(cause)}): check the network, then call again"
    if isinstance(cause, httpx.HTTPStatusError):
        status = cause.response.status_code
        detail = _first_line(err)
        if status in (401, 403):
            return f"NDIF refused the API key ({detail}): check NDIF_API_KEY (keys: login.ndif.us)"
        if status == 413:
            return f"the request is too large for NDIF ({detail}): score fewer items per task, or fewer tasks per call"
        if status in (429, 503):
            return f"NDIF's queue is full ({detail}): call again later"
        if status in (400, 404) and "model" in detail.lower():
            return f"NDIF does not serve {name} ({detail}): see which models it hosts at nnsight.net/status"
        return f"NDIF refused the request (HTTP {status}: {detail})"
    text = _first_line(err)
    lowered = text.lower()
    if "time" in lowered and ("limit" in lowered or "out" in lowered):
        return f"the job ran past NDIF's time limit ({text}): score fewer items per task, then call again"
    if "not" in lowered and ("deployed" in lowered or "hosted" in lowered or "found" in lowered):
        return f"NDIF does not serve {name} ({text}): see which models it hosts at nnsight.net/status"
    return f"the NDIF job failed ({type(err).__name__}: {text})"


def _hub_error(err: BaseException) -> bool:
    """An error of the Hugging Face Hub's client (nnsight names a remote model by its Hub id, looked up online)."""
    return type(err).__module__.startswith("huggingface_hub")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class _State:
    """Stands in for nnsight's status display on a polled job: the job's last state, shown in the progress
    bar's postfix."""

    def __init__(self, bar, job_id: str | None):
        self.bar, self.job_id, self.state = bar, job_id, "submitted"

    def update(self, response) -> None:
        status = getattr(response.status, "value", str(response.status))
        self.state = STATES.get(status, status.lower())
        self.show()

    def show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"NDIF job {self.job_id}: {self.state}")

    def refresh(self) -> None:
        pass
