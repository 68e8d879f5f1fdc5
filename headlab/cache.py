"""The disk cache of per-task results, and atomic file writes.

A task's result (``per_example`` (n, L, H), ``baseline`` (n,), and a scorer's extra ``params``) is stored
as ``{key}.npz`` in the cache folder, where the key hashes the model (its shape and a fingerprint of its
weights), the task's content, the scorer's name and every setting that changes its numbers. A scorer whose
results depend on the whole set of tasks (``Scorer.joint``, e.g. the probe) keys each task on the whole set.
A resumable sweep (exact ablation) saves ``{key}.partial.npz`` after every finished layer and resumes from it.
Every write goes to a temporary file that is renamed into place: readers never see half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

VERSION = 2


def folder(cache) -> Path | None:
    """The cache folder for ``score(cache=...)``: True → ``$HEADLAB_CACHE/scores``, False/None → none."""
    if cache is False or cache is None:
        return None
    if cache is True:
        from .models import cache_dir

        return cache_dir() / "scores"
    return Path(cache)


def model_fingerprint(model) -> str:
    """A cheap content hash of the weights (first values of every parameter)."""
    fp = getattr(model, "_headlab_fingerprint", None)
    if fp is None:
        h = hashlib.sha256()
        for name, p in model.named_parameters():
            h.update(name.encode())
            h.update(p.detach().flatten()[:64].float().cpu().numpy().tobytes())
        fp = h.hexdigest()[:16]
        model._headlab_fingerprint = fp
    return fp


def task_key(model, info, task_hash: str, settings: dict) -> str:
    """The cache key of one task's result: model shape and weights, task content, scorer settings."""
    blob = json.dumps(
        {"v": VERSION, "model": info.to_dict(), "weights": model_fingerprint(model), "task": task_hash, **settings},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_result(path: Path, per_example, baseline, params: dict | None = None) -> None:
    atomic_write_bytes(
        path, npz_bytes(per_example=per_example, clean=baseline, params=np.array(json.dumps(params or {})))
    )


def load_result(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(per_example, baseline, params) of a saved result."""
    with np.load(path, allow_pickle=False) as f:
        params = json.loads(str(f["params"])) if "params" in f.files else {}
        return f["per_example"], f["clean"], params


def save_partial(path: Path, per_example, clean, done) -> None:
    atomic_write_bytes(path, npz_bytes(per_example=per_example, clean=clean, done=done))


def load_partial(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per_example, clean, done) of a partial sweep."""
    with np.load(path, allow_pickle=False) as f:
        return f["per_example"], f["clean"], f["done"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
