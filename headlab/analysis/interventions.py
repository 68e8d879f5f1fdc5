"""Interventions on heads while the model runs: ``mask_heads`` and ``steer`` as context managers.

Both act on ``hook_z`` (per-head outputs before W_O) at every position.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections import defaultdict

import numpy as np
import torch

from ..engine import hooks, nnsight_engine
from ..engine.forward import final_resid
from ..engine.ndif import Requests
from ..engine.nnsight_engine import require_bridge
from ..engine.progress import each
from ..errors import InputError
from ..metrics import prompt_ids

__all__ = ["MODES", "check_heads", "head_means", "mask_head_sets", "mask_heads", "steer"]

MODES = ("zero", "mean", "scale")


def check_heads(heads, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    """``heads`` as a list of distinct (layer, head) int pairs inside an n_layers × n_heads model; one-line
    ValueError (naming the bad entry) for anything else: a lone pair, a float, a triple, a head out of range."""
    if isinstance(heads, (str, bytes)) or heads is None:
        raise InputError(f"heads must be a list of (layer, head) pairs, got {heads!r}")
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(x, numbers.Integral) for x in heads):
        raise InputError(f"heads={heads!r} is one pair: pass a list of pairs, [{heads!r}]")
    try:
        heads = list(heads)
    except TypeError:
        raise InputError(f"heads must be a list of (layer, head) pairs, not {type(heads).__name__}") from None
    out = []
    for i, pair in enumerate(heads):
        try:
            layer, head = pair
        except (TypeError, ValueError):
            raise InputError(f"heads[{i}] = {pair!r} is not a (layer, head) pair") from None
        for v in (layer, head):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise InputError(f"heads[{i}] = {pair!r}: layer and head must be ints, got {v!r}")
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise InputError(f"head ({layer}, {head}) is outside this {n_layers} × {n_heads} model")
        if (int(layer), int(head)) not in out:
            out.append((int(layer), int(head)))
    return out


def _by_layer(model, heads) -> dict[int, list[int]]:
    by_layer = defaultdict(list)
    for layer, head in check_heads(heads, len(model.blocks), model.cfg.n_heads):
        by_layer[layer].append(head)
    return by_layer


def _check_number(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@contextlib.contextmanager
def mask_heads(model, heads, mode: str = "zero", eps: float = 0.0, means=None):
    """Within the block, heads [(layer, head), ...] have ``hook_z`` set to 0 ("zero"), to their mean
    activation ``means[layer, head]`` ("mean"; ``means`` (L, H, d_head) from ``head_means``) or multiplied
    by ``eps`` ("scale"), at every position.

    >>> with mask_heads(model, [(3, 1)]):
    ...     evaluate(model, task)
    """
    require_bridge(model, "mask_heads()")
    if not isinstance(mode, str) or mode not in MODES:
        raise InputError(f"unknown mode {mode!r}: choose from {MODES}")
    if mode == "mean" and means is None:
        raise InputError("mode='mean' needs means=head_means(model, tasks)")
    eps = _check_number("eps", eps)
    by_layer = _by_layer(model, heads)
    if means is not None:
        shape = (len(model.blocks), model.cfg.n_heads, model.cfg.d_head)
        try:
            means = np.asarray(means, dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError("means must be a numeric (layers, heads, d_head) array from head_means") from None
        if means.shape != shape:
            raise InputError(f"means has shape {means.shape}, expected {shape} (layers, heads, d_head): use head_means")
        if not np.isfinite(means).all():
            raise InputError("means holds NaN or inf: recompute it with head_means(model, tasks)")
        means = torch.as_tensor(means)

    def hook_for(layer, hs):
        def hook(z, hook):
            if mode == "mean":
                z[:, :, hs] = means[layer, hs].to(z.device, z.dtype)
            else:
                z[:, :, hs] = z[:, :, hs] * (0.0 if mode == "zero" else float(eps))
            return z

        return hook

    with model.hooks(fwd_hooks=[(hooks.z(l), hook_for(l, hs)) for l, hs in by_layer.items()]):
        yield model


@contextlib.contextmanager
def mask_head_sets(model, sets: list, mode: str = "zero", means=None):
    """``mask_heads`` for many head sets in one pass: each pass holds ``len(sets)`` stacked copies of a batch
    (``evaluate(..., copies=len(sets))``), copy after copy, and copy c runs with the heads ``sets[c]`` masked
    ("zero" or "mean", as ``mask_heads``; ``means`` from ``head_means``)."""
    require_bridge(model, "mask_head_sets()")
    if not isinstance(mode, str) or mode not in ("zero", "mean"):
        raise InputError(f"mask_head_sets mode must be 'zero' or 'mean', got {mode!r}")
    if mode == "mean" and means is None:
        raise InputError("mode='mean' needs means=head_means(model, tasks)")
    L, H = len(model.blocks), model.cfg.n_heads
    masked = torch.zeros((L, len(sets), H), dtype=torch.bool)
    for c, heads in enumerate(sets):
        for layer, head in check_heads(heads, L, H):
            masked[layer, c, head] = True
    means = None if means is None else torch.as_tensor(np.asarray(means, dtype=np.float32))

    def hook_for(layer):
        def hook(z, hook):
            if z.shape[0] % len(sets):
                raise InputError(f"a pass of {z.shape[0]} rows is not {len(sets)} stacked copies of a batch")
            where = masked[layer].to(z.device)[:, None, None, :, None]  # (C, 1, 1, H, 1)
            view = z.view(len(sets), z.shape[0] // len(sets), *z.shape[1:])
            fill = 0.0 if mode == "zero" else means[layer].to(z.device, z.dtype)[None, None, None]
            return torch.where(where, fill, view).view(z.shape)

        return hook

    layers = [l for l in range(L) if masked[l].any()]
    with model.hooks(fwd_hooks=[(hooks.z(l), hook_for(l)) for l in layers]):
        yield model


@contextlib.contextmanager
def steer(model, directions: dict, alpha: float):
    """Add ``alpha`` · v to ``hook_z`` of each head at every position; ``directions`` maps (layer, head) →
    v (d_head,) (e.g. σ-scaled unit directions from ``headlab.analysis.steering.directions``)."""
    require_bridge(model, "steer()")
    if not isinstance(directions, dict):
        raise InputError(f"directions must be a dict (layer, head) → vector, not {type(directions).__name__}")
    alpha = _check_number("alpha", alpha)
    d_head = model.cfg.d_head
    by_layer = defaultdict(dict)
    check_heads(list(directions), len(model.blocks), model.cfg.n_heads)
    for (layer, head), v in directions.items():
        try:
            v = torch.as_tensor(np.asarray(v, dtype=np.float32))
        except (TypeError, ValueError):
            raise InputError(f"direction of head ({layer}, {head}) is not numeric: {v!r:.60}") from None
        if v.shape != (d_head,) or not torch.isfinite(v).all():
            raise InputError(
                f"direction of head ({layer}, {head}) must be {d_head} finite numbers (d_head), "
                f"got shape {tuple(v.shape)}"
            )
        by_layer[int(layer)][int(head)] = v

    def hook_for(vs):
        hs = list(vs)
        add = torch.stack([vs[h] for h in hs])  # (k, d_head)

        def hook(z, hook):
            z[:, :, hs] = z[:, :, hs] + alpha * add.to(z.device, z.dtype)
            return z

        return hook

    with model.hooks(fwd_hooks=[(hooks.z(l), hook_for(vs)) for l, vs in by_layer.items()]):
        yield model


@torch.no_grad()
def head_means(model, tasks, batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """(L, H, d_head): every head's ``hook_z`` averaged over all prompt positions of the tasks' items (a progress
    step per batch of ``batch_size`` prompts). On the nnsight engine each batch is one request whose trace pools
    the heads where the model runs (``nnsight_engine.pooled_z``)."""
    from ..metrics import max_positions
    from ..tasks import as_task_list

    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    task_list = as_task_list(tasks)
    rows = [prompt_ids(model.tokenizer, it.prompt) for t in task_list for it in t.items]
    n_ctx = max_positions(model)
    names = [(t.name, i) for t in task_list for i in range(len(t))]
    for (task, i), r in zip(names, rows):
        if n_ctx is not None and len(r) > n_ctx:
            raise InputError(
                f"task {task!r}: item {i}'s prompt is {len(r)} tokens but the model takes at most {n_ctx} "
                "positions (cfg.n_ctx): shorten or drop it"
            )
    traced = getattr(model, "engine", "bridge") != "bridge"
    L = model.cfg.n_layers
    total, count = None, 0
    pad = model.tokenizer.pad_token_id or 0
    for s in each(range(0, len(rows), batch_size), "head means", progress):
        chunk = rows[s : s + batch_size]
        T = max(map(len, chunk))
        tokens = torch.tensor([r + [pad] * (T - len(r)) for r in chunk])
        real = (torch.arange(T)[None] < torch.tensor([len(r) for r in chunk])[:, None]).float()
        if traced:
            pooled = nnsight_engine.pooled_z(model, tokens, real, Requests(model), f"head means of rows {s}–")
            total = (0 if total is None else total) + torch.as_tensor(pooled).sum(0)
            count += int(real.sum())
            continue
        sums = [None] * L

        def keep(layer):
            def hook(z, hook):
                sums[layer] = torch.einsum("bt,bthd->hd", real.to(z.device), z.float()).cpu()
                return z

            return hook

        final_resid(model, tokens, [(hooks.z(l), keep(l)) for l in range(L)])
        block = torch.stack(sums)
        total = block if total is None else total + block
        count += int(real.sum())
    return (total / count).numpy()
