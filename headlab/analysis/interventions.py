"""Interventions on heads while the model runs: ``mask_heads`` and ``steer`` as context managers.

Both act on ``hook_z`` (per-head outputs before W_O) at every position.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import numpy as np
import torch

from ..engine import hooks
from ..engine.forward import final_resid
from ..metrics import prompt_ids

MODES = ("zero", "mean", "scale")


def _by_layer(model, heads) -> dict[int, list[int]]:
    by_layer = defaultdict(list)
    L, H = len(model.blocks), model.cfg.n_heads
    for layer, head in heads:
        if not (0 <= layer < L and 0 <= head < H):
            raise ValueError(f"head ({layer}, {head}) is outside this {L} × {H} model")
        by_layer[int(layer)].append(int(head))
    return by_layer


@contextlib.contextmanager
def mask_heads(model, heads, mode: str = "zero", eps: float = 0.0, means=None):
    """Within the block, heads [(layer, head), ...] have ``hook_z`` set to 0 ("zero"), to their mean
    activation ``means[layer, head]`` ("mean"; ``means`` (L, H, d_head) from ``head_means``) or multiplied
    by ``eps`` ("scale"), at every position.

    >>> with mask_heads(model, [(3, 1)]):
    ...     evaluate(model, task)
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose from {MODES}")
    if mode == "mean" and means is None:
        raise ValueError("mode='mean' needs means=head_means(model, tasks)")
    by_layer = _by_layer(model, heads)
    means = None if means is None else torch.as_tensor(np.asarray(means), dtype=torch.float32)

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
def steer(model, directions: dict, alpha: float):
    """Add ``alpha`` · v to ``hook_z`` of each head at every position; ``directions`` maps (layer, head) →
    v (d_head,) (e.g. σ-scaled unit directions from ``headlab.steering.directions``)."""
    by_layer = defaultdict(dict)
    for (layer, head), v in directions.items():
        _by_layer(model, [(layer, head)])
        by_layer[int(layer)][int(head)] = torch.as_tensor(v, dtype=torch.float32)

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
def head_means(model, tasks, batch_size: int = 32) -> np.ndarray:
    """(L, H, d_head): every head's ``hook_z`` averaged over all prompt positions of the tasks' items."""
    from ..tasks import as_task_list

    rows = [prompt_ids(model.tokenizer, it.prompt) for t in as_task_list(tasks) for it in t.items]
    L = len(model.blocks)
    total, count = None, 0
    pad = model.tokenizer.pad_token_id or 0
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        T = max(map(len, chunk))
        tokens = torch.tensor([r + [pad] * (T - len(r)) for r in chunk])
        real = (torch.arange(T)[None] < torch.tensor([len(r) for r in chunk])[:, None]).float()
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
