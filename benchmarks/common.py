"""What every benchmark script needs: its arguments, timing side by side, the machine it ran on, and its
results file ``benchmarks/results/<name>.json``, from which ``benchmarks/report.py`` writes docs/performance.md.

A script builds its parser with ``parser(__doc__)``, times with ``timed`` / ``timed_median``, collects its
printed tables in a ``Results`` and calls ``save()`` at the end (``--no-results`` leaves the file alone, for a
tiny run that only checks the script starts).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def offline() -> None:
    """No hub access and no progress bars (the scripts print their own tables)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")


def parser(doc: str | None, repeats: int | None = None) -> argparse.ArgumentParser:
    """The script's parser: its docstring as the help text, ``--repeats`` when the script takes a median of
    repeated calls (``repeats``: the default), and ``--no-results``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if repeats is not None:
        ap.add_argument("--repeats", type=int, default=repeats, help="timed calls after a warm-up (the median)")
    ap.add_argument("--no-results", action="store_true", help="do not write benchmarks/results/<name>.json")
    return ap


def timed(fn):
    """``(fn(), seconds)``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def timed_median(fn, repeats: int, warmup: bool = True):
    """``(the last fn(), median seconds of repeats calls)``, after one untimed call (the fast paths' proofs,
    the first touch of the process's memory) when ``warmup``."""
    if warmup:
        fn()
    out, times = None, []
    for _ in range(repeats):
        out, seconds = timed(fn)
        times.append(seconds)
    return out, statistics.median(times)


def machine() -> str:
    """One line: the processor, cores, torch threads, and the GPU where there is one."""
    parts = [f"{platform.system()} {platform.machine()}", f"{os.cpu_count()} CPU cores"]
    try:
        import torch

        parts.append(f"{torch.get_num_threads()} torch threads")
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name())
    except ImportError:
        pass
    return ", ".join(parts)


def command() -> str:
    """The command line this process was started with, as one would type it from the repository root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(HERE.parent)
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def markdown(headers: list[str], rows: list[list]) -> str:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


class Results:
    """A benchmark's figures as it prints them: tables of formatted cells, and notes (one line each).

    ``Results(name, title, what)``; ``table(title, headers, rows)`` prints the table and keeps it; ``note(text)``
    prints and keeps a line; ``save(args)`` writes ``benchmarks/results/<name>.json`` with the date, the command
    and the machine (unless ``args.no_results``)."""

    def __init__(self, name: str, title: str, what: str):
        self.name, self.title, self.what = name, title, what
        self.tables: list[dict] = []
        self.notes: list[str] = []

    def table(
        self, title: str, headers: list[str], rows: list[list], note: str | None = None, echo: bool = True
    ) -> None:
        """Keep a table (and print it, unless ``echo=False``: a script that printed its rows as they came)."""
        rows = [[str(c) for c in row] for row in rows]
        if echo:
            print(f"\n## {title}\n\n{markdown(headers, rows)}" + (f"\n{note}" if note else ""), flush=True)
        self.tables.append({"title": title, "headers": list(headers), "rows": rows, **({"note": note} if note else {})})

    def note(self, text: str) -> None:
        print(text, flush=True)
        self.notes.append(text)

    def data(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "what": self.what,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command(),
            "machine": machine(),
            "source": "run",
            "tables": self.tables,
            "notes": self.notes,
        }

    def save(self, args: argparse.Namespace | None = None) -> Path | None:
        if args is not None and getattr(args, "no_results", False):
            return None
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(self.data(), indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {path.relative_to(HERE.parent)} (docs/performance.md: python benchmarks/report.py)")
        return path


def embedded_model(**kwargs):
    """The embedded SmolLM2-135M-Instruct (``headlab.load_model()``), and its load time in seconds."""
    import headlab

    return timed(lambda: headlab.load_model(**kwargs))


def builtin_tasks(items: int, names: list[str] | None = None) -> dict:
    """The built-in tasks (all eight, or ``names``), each cut to its first ``items`` items: name → Task."""
    from headlab import builtin

    return {name: task.subset(items) for name, task in builtin(names).items()}


def test_models():
    """``(tiny_hf, byte_tokenizer)``: headlab's test models, from ``headlab.testing`` (``headlab.models``
    before the move)."""
    try:
        from headlab.testing import byte_tokenizer, tiny_hf
    except ImportError:
        from headlab.models import byte_tokenizer, tiny_hf
    return tiny_hf, byte_tokenizer


def reference():
    """headlab's plain reference implementations (``headlab.testing.reference``; ``headlab.scorers.reference``
    before the move)."""
    try:
        from headlab.testing import reference as module
    except ImportError:
        from headlab.scorers import reference as module
    return module
