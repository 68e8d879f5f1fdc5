"""The disk cache of per-task results, the in-process memos, and the one key both use: a cache that cannot lie.

A map is a function of the weights, the whole config, the token ids the tasks become, and the method's
options; the key (``model_key``) hashes all of them:

- the cache schema ``VERSION``;
- the model: its shape and dtype (``ModelInfo``) and a hash of **all** its weights and buffers
  (``weights_fingerprint``: every byte, recomputed whenever a parameter's version counter, storage, dtype or
  device changes — in-place edits under ``torch.no_grad()``, ``load_state_dict`` and ``.to()`` are seen);
- its whole configuration (``models.config_fingerprint``: every field of the wrapped Hugging Face config and of
  the bridge's ``cfg``, less the few that only name or place it, ``models.PLACEMENT_FIELDS``, each proven by a
  test not to change a map): another ``rms_norm_eps`` or ``hidden_act`` over the same weights is another key;
- the tokenizer (``tokenizer_fingerprint``: its serialised pipeline, vocabulary, special tokens and settings)
  and, per task, the token ids its texts become (``ids_fingerprint``);
- the method, its ablation, metric and options; a scorer whose results depend on the whole set of tasks
  (``Scorer.joint``, the probe) also keys on every task of the set.

A task's result (``per_example`` (n, L, H), ``baseline`` (n,), and a scorer's extra ``params``) is stored
as ``{key}.npz`` in the cache folder. Results kept in memory (``Memo``: the faithfulness curves, the
workshop's checks) use the same key and the same rules: no reuse while hooks are active, none under
``cache=False``.

It heals: a truncated, corrupt or foreign file is moved aside (``*.unreadable``) with one warning naming it,
and the result is recomputed. An unwritable folder or a full disk costs the cache, never the result (one
warning). An exact sweep (exact ablation, and verified's exact re-runs) saves ``{key}.partial.npz`` after
every finished run of layers (one joined pass's; on the nnsight engine, every finished request) and resumes
from it when it sweeps the same heads; the same file keeps the ids of NDIF jobs submitted and not yet fetched. Every
write goes to a temporary file that is renamed into place: readers never see half a file, and two processes
writing the same key leave one whole file.

While any hook is on one of the model's hook points (``mask_heads``, ``steer``, ``model.hooks``), ``score()``
neither reads nor writes the cache, and says so.

Gotchas: a weight changed through ``.data`` (which bypasses PyTorch's version counter), and a hook registered
with plain ``register_forward_hook`` on a submodule rather than on a hook point, are not seen: edit weights
under ``torch.no_grad()``, hook through ``model.hooks(...)``, or pass ``cache=False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .engine.hooks import hooks_active
from .errors import InputError, InputTypeError
from .files import atomic_write_bytes

__all__ = [
    "MEMOS",
    "Memo",
    "READ_ERRORS",
    "folder",
    "ids_fingerprint",
    "load_partial",
    "load_result",
    "model_fingerprint",
    "model_key",
    "move_aside",
    "npz_bytes",
    "partial_jobs",
    "save_partial",
    "save_result",
    "task_key",
    "tokenizer_fingerprint",
    "weights_fingerprint",
    "write_or_warn",
]

VERSION = 6  # 6: the key holds the whole config and the token ids (5: candidates=K verifies exactly K heads)
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
        raise InputTypeError(
            f"cache must be True, False, None or a folder path, got {cache!r} ({type(cache).__name__})"
        )
    if str(cache).strip() == "":
        raise InputError("cache='' is an empty path: pass cache=False to turn the cache off, or name a folder")
    path = Path(cache).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"cache={str(cache)!r} is a file, not a folder: name a folder (or cache=False)")
    return path


def weights_fingerprint(model) -> str:
    """A hash of every byte of the model's parameters and buffers, with their names, shapes and dtypes;
    memoised until any parameter's version counter, storage, dtype or device changes."""
    import torch

    remote = getattr(model, "weights_id", None)  # weights that are not here (NDIF): the checkpoint it serves
    if remote is not None:
        return hashlib.blake2b(remote.encode(), digest_size=16).hexdigest()
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
    """A hash of the tokenizer: its serialised pipeline (fast tokenizers), vocabulary, special tokens and the
    settings that change what a text becomes (``split_special_tokens``, ``add_bos_token``, ...)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
    specials = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    h.update(json.dumps(specials, sort_keys=True).encode())
    settings = {k: getattr(tokenizer, k, None) for k in TOKENIZER_SETTINGS}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


TOKENIZER_SETTINGS = ("split_special_tokens", "add_bos_token", "add_eos_token", "clean_up_tokenization_spaces")


def ids_fingerprint(tokenizer, task) -> str:
    """A hash of the task's content and of the token ids its every text becomes under ``tokenizer``: a map is a
    function of the ids, so a tokenizer setting that changes them changes the key."""
    from .metrics import prompt_ids

    texts = [t for it in task.items for t in (it.prompt, it.answer, it.counterfactual, it.counterfactual_answer)]
    ids = [None if t is None else prompt_ids(tokenizer, t) for t in texts]
    return hashlib.blake2b(json.dumps([task.content_hash(), ids]).encode(), digest_size=16).hexdigest()


def model_fingerprint(model) -> str:
    """The model's identity: a hash of its shape and dtype, every weight, its whole config and its tokenizer, not
    its name (a moved folder is the same model) (``HeadScores.model.fingerprint``: a map is refused on a model
    whose fingerprint differs)."""
    from .models import config_fingerprint, describe

    shape = {k: v for k, v in describe(model).to_dict().items() if k not in ("name", "fingerprint")}
    parts = [
        json.dumps(shape, sort_keys=True),
        weights_fingerprint(model),
        config_fingerprint(model),
        tokenizer_fingerprint(model.tokenizer),
    ]
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def model_key(model, settings: dict, fingerprint: str | None = None) -> str:
    """The key of anything computed on ``model``: cache schema, ``model_fingerprint`` (``fingerprint``: it,
    computed already) and ``settings`` (the tasks' ids, the method and its options)."""
    fingerprint = fingerprint or model_fingerprint(model)
    blob = json.dumps({"v": VERSION, "model": fingerprint, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def task_key(model, task, settings: dict, fingerprint: str | None = None) -> str:
    """The cache key of one task's result: ``model_key`` with the task's token ids and the scorer settings."""
    return model_key(model, {"task": ids_fingerprint(model.tokenizer, task), **settings}, fingerprint)


class Memo:
    """Results kept in this process under the disk cache's rules: the key is ``model_key`` (weights, whole
    config, tokenizer, and the caller's settings, which name the tasks' ids and every option); nothing is read
    or kept while hooks are active or when the caller says ``cache=False``. At most ``size`` entries, oldest
    out first. Every memo of results in the package is one of these (``MEMOS``)."""

    def __init__(self, name: str, size: int):
        self.name, self.size, self.entries = name, size, {}
        MEMOS.append(self)

    def get(self, model, settings: dict, make, cache=True):
        """``make()``'s value for ``settings`` on ``model``: kept from an earlier call where the rules allow."""
        if not cache or hooks_active(model):
            return make()
        key = model_key(model, settings)
        if key in self.entries:
            self.entries[key] = self.entries.pop(key)  # most recent last
            return self.entries[key]
        value = make()
        self.entries[key] = value
        while len(self.entries) > self.size:
            self.entries.pop(next(iter(self.entries)))
        return value

    def clear(self) -> None:
        self.entries.clear()


MEMOS: list[Memo] = []


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
            raise InputError(f"verified has shape {verified.shape}, not {per_example.shape[1:]}")
        if per_example.ndim != 3 or (shape is not None and per_example.shape[1:] != tuple(shape)):
            raise InputError(f"per_example has shape {per_example.shape}, not (items, {shape[0]}, {shape[1]})")
        if baseline.ndim != 1 or not len(baseline):
            raise InputError(f"baseline has shape {baseline.shape}, not (n,)")
    except READ_ERRORS as err:
        move_aside(path, err)
        return None
    return per_example, baseline, params, verified


def save_partial(path: Path, per_example=None, clean=None, done=None, heads=None, jobs=None) -> bool:
    """Save a partial sweep: ``per_example`` (n, L, H), ``clean`` (n,), ``done`` ((L,): the bridge's finished
    layers, or (L, H): the nnsight engine's finished heads) and the (L, H) ``heads`` it ablates; and ``jobs``,
    the NDIF jobs submitted and not yet fetched (label → {"id", "model_key"}). Either part may be absent."""
    arrays = {} if per_example is None else {"per_example": per_example, "clean": clean, "done": done, "heads": heads}
    if jobs:
        arrays["jobs"] = np.array(json.dumps(jobs, sort_keys=True))
    return write_or_warn(path, npz_bytes(**arrays))


def load_partial(path: Path, shape: tuple[int, int, int], heads, per_head: bool = False):
    """(per_example, clean, done) of a partial sweep of ``shape`` (n, L, H) over the (L, H) mask ``heads``; None
    when there is none (or only job ids), when it sweeps other heads (a verified task whose screen came out
    otherwise: it starts over), or when it is unreadable (moved aside). ``per_head``: ``done`` is (L, H)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if "per_example" not in f.files:
                return None
            per_example, clean, done = f["per_example"], f["clean"], f["done"]
            swept = f["heads"] if "heads" in f.files else np.ones(shape[1:], dtype=bool)  # older: every head
        if per_example.shape != tuple(shape) or clean.shape != shape[:1]:
            raise InputError(f"a partial sweep of shape {per_example.shape}, not {tuple(shape)}")
        if done.shape != (shape[1:] if per_head else shape[1:2]):
            raise InputError(f"a partial sweep with done of shape {done.shape}")
    except READ_ERRORS as err:
        move_aside(path, err)
        return None
    if not np.array_equal(swept, heads):
        return None
    return per_example, clean, done.astype(bool)


def partial_jobs(path: Path | None) -> dict:
    """The NDIF jobs a partial file keeps (label → {"id", "model_key"}); {} where there are none."""
    if path is None or not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as f:
            return json.loads(str(f["jobs"])) if "jobs" in f.files else {}
    except READ_ERRORS as err:
        move_aside(path, err)
        return {}


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
