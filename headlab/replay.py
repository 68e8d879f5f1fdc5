"""Replay: one clean forward pass, cached at every block input, re-run from any layer under hooks.

An ablation at layer l cannot change blocks < l, so the exact scorer keeps the residual stream entering
each block and runs only blocks ≥ l, for several head ablations at once (``copies`` of the batch), and
computes logits only at the positions the metric reads.
"""
from __future__ import annotations

import contextlib

import torch

from . import hooks
from .metrics import gather_positions


def _tile(value, n: int, copies: int):
    if copies == 1:
        return value
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value.repeat(copies, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple):
        return tuple(_tile(v, n, copies) for v in value)
    return value


class _Stop(Exception):
    pass


def final_resid(model, tokens: torch.Tensor, fwd_hooks=()) -> torch.Tensor:
    """Run ``model`` on ``tokens`` up to the final norm and return the residual stream (n, T, d_model).

    The forward is stopped at ``ln_final``, so no full-vocabulary logits are computed. Works with grad.
    """
    box = {}

    def stop(module, args):
        box["resid"] = args[0]
        raise _Stop

    handle = model.ln_final.register_forward_pre_hook(stop)
    try:
        with model.hooks(fwd_hooks=list(fwd_hooks)):
            model(tokens)
    except _Stop:
        pass
    finally:
        handle.remove()
    return box["resid"]


class Replay:
    """Clean run of ``tokens`` (n, T): block inputs ``resid[l]`` (n, T, d_model), clean ``z[l]``
    (n, T, H, d_head), and the clean logits at ``read_pos``."""

    def __init__(self, model, tokens: torch.Tensor, read_pos: torch.Tensor, keep_z: bool = True):
        self.model, self.tokens, self.read_pos = model, tokens, read_pos
        self.n = tokens.shape[0]
        n_layers = len(model.blocks)
        self.resid: list[torch.Tensor] = [None] * n_layers
        self.kwargs: list[dict] = [None] * n_layers
        self.z: list[torch.Tensor] = [None] * n_layers
        handles = [block.register_forward_pre_hook(self._capture(layer), with_kwargs=True)
                   for layer, block in enumerate(model.blocks)]
        fwd = [(hooks.z(l), self._keep_z(l)) for l in range(n_layers)] if keep_z else []
        try:
            with torch.no_grad():
                resid = final_resid(model, tokens, fwd)
        finally:
            for h in handles:
                h.remove()
        with torch.no_grad():
            self.clean_logits = self.unembed_at(resid)

    def _capture(self, layer):
        def hook(module, args, kwargs):
            if self.resid[layer] is None:
                self.resid[layer] = args[0].detach()
                kw = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value", "use_cache")}
                self.kwargs[layer] = kw
        return hook

    def _keep_z(self, layer):
        def hook(z, hook):
            if self.z[layer] is None:
                self.z[layer] = z.detach().clone()
            return z
        return hook

    def _blocks_from(self, start: int, resid: torch.Tensor, copies: int) -> torch.Tensor:
        x = resid
        for layer in range(start, len(self.model.blocks)):
            out = self.model.blocks[layer](x, **{k: _tile(v, self.n, copies) for k, v in self.kwargs[layer].items()})
            x = out[0] if isinstance(out, tuple) else out
        return x

    def unembed_at(self, x: torch.Tensor) -> torch.Tensor:
        """Final residual (copies·n, T, d) → logits at the read positions (copies·n, P, V)."""
        return unembed_at(self.model, x, self.read_pos)

    def logits_from(self, start: int, resid: torch.Tensor | None = None, copies: int = 1, fwd_hooks=()) -> torch.Tensor:
        """Re-run blocks ≥ ``start`` on ``copies`` stacked copies of the batch; logits (copies·n, P, V)."""
        if resid is None:
            resid = self.resid[start].repeat(copies, 1, 1)
        ctx = self.model.hooks(fwd_hooks=list(fwd_hooks)) if fwd_hooks else contextlib.nullcontext()
        with ctx:
            return self.unembed_at(self._blocks_from(start, resid, copies))


def unembed_at(model, x: torch.Tensor, read_pos: torch.Tensor) -> torch.Tensor:
    """Final residual (k·n, T, d) → logits (k·n, P, V) at ``read_pos`` (n, P), tiled over the k copies."""
    copies = x.shape[0] // read_pos.shape[0]
    x = gather_positions(x, read_pos.repeat(copies, 1))
    return model.unembed(model.ln_final(x))
