"""The device machine's set-up for ``benchmarks/gpu_check.py``, run before headlab is imported.

The device machine has Python 3.12 with torch, transformers and accelerate, but no transformer-lens, no headlab
and no package registry. ``make gpu-carry`` fills the git-ignored ``carry/`` here with wheels (transformer-lens
and what it imports that the image may lack) and the SmolLM2 tokenizer files; the run carries ``["carry"]``.
``setup()`` installs the carried wheels whose distributions are missing into a fresh folder put first on
``sys.path`` (the image's own packages stay as they are) and puts this working tree first, so headlab is imported
from it with nothing to build.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARRY = ROOT / "carry"


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def setup() -> dict:
    """Make transformer_lens importable from ``carry/wheels`` where it is missing, and headlab from this tree."""
    done = {"installed": [], "seconds": 0.0}
    t = time.perf_counter()
    if importlib.util.find_spec("transformer_lens") is None:
        wheels = sorted((CARRY / "wheels").glob("*.whl"))
        if not wheels:
            raise RuntimeError(
                f"transformer_lens is not installed and {CARRY / 'wheels'} holds no wheels: run `make gpu-carry` "
                'here and carry ["carry"]'
            )
        have = {canonical(d.metadata["Name"] or "") for d in importlib.metadata.distributions()}
        todo = [w for w in wheels if canonical(w.name.split("-")[0]) not in have]
        site = tempfile.mkdtemp(prefix="headlab-site-")
        if todo:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index"]
                + ["--no-deps", "--no-compile", "--target", site, *map(str, todo)],
                check=True,
            )
        sys.path.insert(0, site)
        importlib.invalidate_caches()
        done["installed"] = [w.name for w in todo]
        try:
            import datasets  # noqa: F401  (transformer_lens imports it at import time)
        except Exception as err:
            done["datasets_stand_in"] = first_line(err)
            stand_in_datasets()
    sys.path.insert(0, str(ROOT))  # headlab from this working tree
    done["seconds"] = time.perf_counter() - t
    return done


def stand_in_datasets() -> None:
    """transformer_lens imports ``datasets`` when it is imported, but uses it only to load data sets, which
    headlab never does. Where the carried wheel does not import against the image's pyarrow or pandas, stand-in
    modules with the three names it imports keep transformer_lens importable."""
    import types

    for name in [m for m in sys.modules if m == "datasets" or m.startswith("datasets.")]:
        del sys.modules[name]

    def load_dataset(*args, **kwargs):
        raise RuntimeError("datasets is a stand-in in this run (see benchmarks/gpu/setup.py)")

    names = {
        "datasets": {"load_dataset": load_dataset},
        "datasets.arrow_dataset": {"Dataset": type("Dataset", (), {})},
        "datasets.iterable_dataset": {"IterableDataset": type("IterableDataset", (), {})},
        "datasets.load": {"load_dataset": load_dataset},
    }
    for name, attrs in names.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    for name in names:
        if "." in name:
            setattr(sys.modules["datasets"], name.split(".")[1], sys.modules[name])
