"""Interventions on heads while the model runs: ``mask_heads`` as a context manager."""
from __future__ import annotations

import contextlib
from collections import defaultdict

from . import hooks

MODES = ("zero", "scale")


@contextlib.contextmanager
def mask_heads(model, heads, mode: str = "zero", eps: float = 0.0):
    """Within the block, heads [(layer, head), ...] have ``hook_z`` set to 0 ("zero") or multiplied by
    ``eps`` ("scale") at every position.

    >>> with mask_heads(model, [(3, 1)]):
    ...     evaluate(model, task)
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose from {MODES}")
    by_layer = defaultdict(list)
    L, H = len(model.blocks), model.cfg.n_heads
    for layer, head in heads:
        if not (0 <= layer < L and 0 <= head < H):
            raise ValueError(f"head ({layer}, {head}) is outside this {L} × {H} model")
        by_layer[int(layer)].append(int(head))
    factor = 0.0 if mode == "zero" else float(eps)

    def hook_for(hs):
        def hook(z, hook):
            z[:, :, hs] = z[:, :, hs] * factor
            return z
        return hook

    with model.hooks(fwd_hooks=[(hooks.z(l), hook_for(hs)) for l, hs in by_layer.items()]):
        yield model
