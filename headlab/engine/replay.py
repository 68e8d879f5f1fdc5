"""Replay: one clean forward pass, cached at every block input, re-run from any layer under hooks.

An ablation at layer l cannot change blocks < l, so the exact scorer keeps the residual stream entering
each block and runs only blocks ≥ l, for several head ablations at once (``copies`` of the batch), and
keeps the final residual stream only at the positions the metric reads (``metrics.metric_at`` turns it
into the metric).
"""

from __future__ import annotations

import contextlib

import torch

from . import hooks
from .forward import at_positions, final_resid


def _tile(value, n: int, copies: int):
    if copies == 1:
        return value
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
        return value.repeat(copies, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple):
        return tuple(_tile(v, n, copies) for v in value)
    return value


class Replay:
    """Clean run of ``tokens`` (n, T): block inputs ``resid[l]`` (n, T, d_model), clean ``z[l]``
    (n, T, H, d_head), and ``clean_read``, the final residual stream at ``read_pos`` (n, P, d_model)."""

    def __init__(self, model, tokens: torch.Tensor, read_pos: torch.Tensor, keep_z: bool = True):
        self.model, self.tokens, self.read_pos = model, tokens, read_pos
        self.n = tokens.shape[0]
        n_layers = len(model.blocks)
        self.resid: list[torch.Tensor] = [None] * n_layers
        self.kwargs: list[dict] = [None] * n_layers
        self.z: list[torch.Tensor] = [None] * n_layers
        self.kv = None  # the clean run's key/value cache, when the model keeps one (HF-backed bridges)
        handles = [
            block.register_forward_pre_hook(self._capture(layer), with_kwargs=True)
            for layer, block in enumerate(model.blocks)
        ]
        fwd = [(hooks.z(l), self._keep_z(l)) for l in range(n_layers)] if keep_z else []
        try:
            with torch.no_grad():
                resid = final_resid(model, tokens, fwd)
        finally:
            for h in handles:
                h.remove()
        self.clean_read = at_positions(resid, read_pos)

    def _capture(self, layer):
        def hook(module, args, kwargs):
            if self.resid[layer] is None:
                self.resid[layer] = args[0].detach()
                if layer == 0 and hasattr(kwargs.get("past_key_values"), "layers"):
                    self.kv = kwargs["past_key_values"]
                kw = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value", "use_cache")}
                self.kwargs[layer] = kw

        return hook

    def _keep_z(self, layer):
        def hook(z, hook):
            if self.z[layer] is None:
                self.z[layer] = z.detach().clone()
            return z

        return hook

    def _blocks_from(self, start: int, resid: torch.Tensor, copies: int, prefix: int = 0) -> torch.Tensor:
        x = resid
        for layer in range(start, len(self.model.blocks)):
            kwargs = {k: _tile(v, self.n, copies) for k, v in self.kwargs[layer].items()}
            if prefix:
                kwargs = _suffix_kwargs(kwargs, prefix, _PrefixKV(self.kv, prefix, copies))
            out = self.model.blocks[layer](x, **kwargs)
            x = out[0] if isinstance(out, tuple) else out
        return x

    def supports_prefix(self) -> bool:
        """Whether ``read_from(..., prefix=d)`` can reuse the clean keys/values of positions < d."""
        return self.kv is not None and all(set(kw) <= _SUFFIX_KWARGS for kw in self.kwargs)

    def read_from(
        self, start: int, resid: torch.Tensor | None = None, copies: int = 1, fwd_hooks=(), prefix: int = 0
    ) -> torch.Tensor:
        """Re-run blocks ≥ ``start`` on ``copies`` stacked copies of the batch; the final residual stream
        at the read positions (copies·n, P, d_model).

        ``prefix=d``: positions < d are known to be unchanged (e.g. resample ablation where the clean and
        counterfactual prompts share their first d tokens): only positions ≥ d are re-run, attending to the
        clean run's cached keys and values for the prefix. Hooks then see (copies·n, T − d, ...) tensors.
        """
        if prefix and not self.supports_prefix():
            raise ValueError("this model keeps no key/value cache: re-run with prefix=0")
        if resid is None:
            resid = self.resid[start][:, prefix:].repeat(copies, 1, 1)
        ctx = self.model.hooks(fwd_hooks=list(fwd_hooks)) if fwd_hooks else contextlib.nullcontext()
        with ctx:
            x = self._blocks_from(start, resid, copies, prefix)
        return at_positions(x, self.read_pos - prefix)


_SUFFIX_KWARGS = {"position_embeddings", "position_ids", "attention_mask", "cache_position"}


def _suffix_kwargs(kwargs: dict, prefix: int, kv) -> dict:
    """Block kwargs for positions ≥ ``prefix`` only, with ``kv`` supplying the prefix keys/values."""
    out = {"past_key_values": kv, "use_cache": True}
    for k, v in kwargs.items():
        if k == "position_embeddings":
            out[k] = tuple(t[:, prefix:] for t in v)
        elif k == "position_ids":
            out[k] = v[..., prefix:]
        elif k == "attention_mask":
            out[k] = None if v is None else v[..., prefix:, :]
        elif k == "cache_position":
            out[k] = v[prefix:]
    return out


class _PrefixKV:
    """Stands in for a key/value cache: prepends the clean run's keys/values of positions < prefix."""

    def __init__(self, cache, prefix: int, copies: int):
        self.cache, self.prefix, self.copies = cache, prefix, copies

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int, *args, **kwargs):
        layer = self.cache.layers[layer_idx]
        pk = layer.keys[:, :, : self.prefix].repeat(self.copies, 1, 1, 1)
        pv = layer.values[:, :, : self.prefix].repeat(self.copies, 1, 1, 1)
        return torch.cat([pk, k], dim=-2), torch.cat([pv, v], dim=-2)
