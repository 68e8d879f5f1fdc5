"""The disk cache of per-task results, and atomic file writes: a cache that cannot lie.

A task's result (``per_example`` (n, L, H), ``baseline`` (n,), and a scorer's extra ``params``) is stored
as ``{key}.npz`` in the cache folder. The key hashes everything that changes the numbers:

- the cache schema ``VERSION``;
- the model: its shape and dtype (``ModelInfo``) and a hash of **all** its weights and buffers
  (``weights_fingerprint``: every byte, recomputed whenever a parameter's version counter, storage, dtype or
  device changes — in-place edits under ``torch.no_grad()``, ``load_state_dict`` and ``.to()`` are seen);
- the tokenizer (``tokenizer_fingerprint``: its whole serialised pipeline, vocabulary and special tokens);
- the task's content, the method, its ablation, metric and options; a scorer whose results depend on the
  whole set of tasks (``Scorer.joint``, the probe) also keys on every task of the set.

It heals: a truncated, corrupt or foreign file is moved aside (``*.unreadable``) with one warning naming it,
and the result is recomputed. An unwritable folder or a full disk costs the cache, never the result (one
warning). A resumable sweep (exact ablation, and verified's exact re-runs) saves ``{key}.partial.npz`` after
every finished run of layers (one joined pass's) and resumes from it when it sweeps the same heads. Every
write goes to a temporary file that is renamed into place: readers never see half a file, and two processes
writing the same key leave one whole file.

While any hook is on one of the model's hook points (``mask_heads``, ``steer``, ``model.hooks``), ``score()``
neither reads nor writes the cache, and says so.

Gotchas: a weight changed through ``.data`` (which bypasses PyTorch's version counter), and a hook registered
with plain ``register_forward_hook`` on a submodule rather than on a hook point, are not seen: edit weights
under ``torch.no_grad()``, hook through ``model.hooks(...)``, or pass ``cache=False``.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

VERSION = 5  # 5: candidates=K verifies exactly K heads over all screens (4: params["n_verified"])
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError)


def folder(cache) -> Path | None:
    """The cache folder for ``score(cache=...)``: True → ``$HEADLAB_CACHE/scores``, False/None → none, or a
    folder (str or path). Anything else is refused with one line."""
    if cache is False or cache is None:
        return None
    if cache is True:
        from .models import cache_dir

        return cache_dir() / "scores"
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be True, False, None or a folder path, got {cache!r} ({type(cache).__name__})")
    if str(cache).strip() == "":
        raise ValueError("cache='' is an empty path: pass cache=False to turn the cache off, or name a folder")
    path = Path(cache).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"cache={str(cache)!r} is a file, not a folder: name a folder (or cache=False)")
    return path


def weights_fingerprint(model) -> str:
    """A hash of every byte of the model's parameters and buffers, with their names, shapes and dtypes;
    memoised until any parameter's version counter, storage, dtype or device changes."""
    import torch

    tensors = [*model.named_parameters(), *model.named_buffers()]
    state = tuple((n, t.data_ptr(), t._version, t.dtype, tuple(t.shape), str(t.device)) for n, t in tensors)
    memo = getattr(model, "_headlab_weights", None)
    if memo is not None and memo[0] == state:
        return memo[1]
    h = hashlib.blake2b(digest_size=16)
    for name, t in tensors:
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        flat = t.detach().reshape(-1)
        for start in range(0, flat.numel(), 1 << 24):  # a chunk at a time: a GPU tensor is copied in pieces
            h.update(flat[start : start + (1 << 24)].cpu().contiguous().view(-1).view(torch.uint8).numpy())
    fp = h.hexdigest()
    model._headlab_weights = (state, fp)
    return fp


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer: its serialised pipeline (fast tokenizers), vocabulary and special tokens."""
    h = hashlib.blake2b(digest_size=16)
    h.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    specials = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    h.update(json.dumps(specials, sort_keys=True).encode())
    return h.hexdigest()


def task_key(model, info, task_hash: str, settings: dict) -> str:
    """The cache key of one task's result: schema, model shape, dtype and weights, tokenizer, task content,
    scorer settings."""
    blob = json.dumps(
        {
            "v": VERSION,
            "model": info.to_dict(),
            "weights": weights_fingerprint(model),
            "tokenizer": tokenizer_fingerprint(model.tokenizer),
            "task": task_hash,
            **settings,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def hooks_active(model) -> bool:
    """Whether any hook is on one of the model's hook points (``mask_heads``, ``steer``, ``model.hooks(...)``,
    ``add_hook``): then the model computes something else than its weights say."""
    points = getattr(model, "hook_dict", {}).values()
    return any(p._forward_hooks or p._forward_pre_hooks or p._backward_hooks for p in points)


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_result(path: Path, per_example, baseline, params: dict | None = None, verified=None) -> bool:
    """Write one task's result (``verified``: an optional (n_layers, n_heads) bool mask); False (with one
    warning) where the folder or the disk refuses it."""
    extra = {} if verified is None else {"verified": np.asarray(verified, dtype=bool)}
    data = npz_bytes(per_example=per_example, clean=baseline, params=np.array(json.dumps(params or {})), **extra)
    return write_or_warn(path, data)


def load_result(path: Path, shape: tuple[int, int] | None = None):
    """(per_example, baseline, params, verified) of a saved result (verified: None where none was saved), or
    None when there is none or it is unreadable (then it is moved aside, with one warning). ``shape``: the
    (n_layers, n_heads) it must have."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            params = json.loads(str(f["params"])) if "params" in f.files else {}
            per_example, baseline = f["per_example"], f["clean"]
            verified = f["verified"].astype(bool) if "verified" in f.files else None
        if verified is not None and verified.shape != per_example.shape[1:]:
            raise ValueError(f"verified has shape {verified.shape}, not {per_example.shape[1:]}")
        if per_example.ndim != 3 or (shape is not None and per_example.shape[1:] != tuple(shape)):
            raise ValueError(f"per_example has shape {per_example.shape}, not (items, {shape[0]}, {shape[1]})")
        if baseline.ndim != 1 or not len(baseline):
            raise ValueError(f"baseline has shape {baseline.shape}, not (n,)")
    except READ_ERRORS as err:
        move_aside(path, err)
        return None
    return per_example, baseline, params, verified


def save_partial(path: Path, per_example, clean, done, heads) -> bool:
    """Save a partial sweep: ``per_example`` (n, L, H), ``clean`` (n,), ``done`` (L,) and the (L, H) ``heads``
    it ablates."""
    return write_or_warn(path, npz_bytes(per_example=per_example, clean=clean, done=done, heads=heads))


def load_partial(path: Path, shape: tuple[int, int, int], heads):
    """(per_example, clean, done) of a partial sweep of ``shape`` (n, L, H) over the (L, H) mask ``heads``; None
    when there is none, when it sweeps other heads (a verified task whose screen came out otherwise: it starts
    over), or when it is unreadable (moved aside)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            per_example, clean, done = f["per_example"], f["clean"], f["done"]
            swept = f["heads"] if "heads" in f.files else np.ones(shape[1:], dtype=bool)  # older: every head
        if per_example.shape != tuple(shape) or clean.shape != shape[:1] or done.shape != shape[1:2]:
            raise ValueError(f"a partial sweep of shape {per_example.shape}, not {tuple(shape)}")
    except READ_ERRORS as err:
        move_aside(path, err)
        return None
    if not np.array_equal(swept, heads):
        return None
    return per_example, clean, done.astype(bool)


def move_aside(path: Path, err: BaseException) -> None:
    """Rename an unreadable cache file to ``*.unreadable`` (kept for inspection) and say so once."""
    aside = path.with_name(path.name + ".unreadable")
    try:
        os.replace(path, aside)
        where = f"moved aside to {aside.name}"
    except OSError:
        where = "could not move it aside"
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    warnings.warn(f"headlab cache: {path} is unreadable ({reason}); {where}, recomputing", stacklevel=3)


_WARNED: set = set()


def write_or_warn(path: Path, data: bytes) -> bool:
    """``atomic_write_bytes``, but a refused write (permissions, full disk) is one warning per folder."""
    try:
        atomic_write_bytes(path, data)
        return True
    except OSError as err:
        if str(path.parent) not in _WARNED:
            _WARNED.add(str(path.parent))
            reason = err.strerror or str(err)
            warnings.warn(
                f"headlab cache: cannot write to {path.parent} ({reason}); results are returned but not "
                "cached: pass cache= another folder, or cache=False",
                stacklevel=3,
            )
        return False


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers never see half a file. The
    temporary name holds the writer's process id, so what a killed writer left behind is removed here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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


def remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` whose writing process no longer runs (killed mid-write)."""
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 1 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
