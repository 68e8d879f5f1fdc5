"""Replay: one clean forward pass, cached at every block input, re-run from any layer under hooks.

An ablation at layer l cannot change blocks < l, so the exact scorer keeps the residual stream entering
each block and runs only blocks ≥ l, for several head ablations at once (``copies`` of the batch), and
keeps the final residual stream only at the positions the metric reads (``metrics.metric_at`` turns it
into the metric).

Re-running a block by hand needs its keyword arguments, which differ between architectures. A block's
cache argument (``past_key_values``, GPT-NeoX's and BLOOM's ``layer_past``) is dropped, so a re-run never
appends to the clean run's cache; batch-first tensors are tiled over the copies by name (``TILED``: BLOOM's
``alibi`` is batch × heads first); anything else unknown means the blocks cannot be re-run by hand, and
``Replay`` then re-runs the whole model (``full=True``) — slower, never wrong. ``supported(model)`` proves
the block re-run on the model itself, once: it must give the clean run's numbers.

``read_from(..., joins={l: c})`` lets copies join the re-run at later layers: ablations of heads in layers
l₀ < l₁ < … share one pass, each copy re-running only from its own layer.

``rows(idx, width)`` cuts a narrower batch's clean run out of a larger one (resample's prefix batches share one
clean run of the task: a small batch's own run is mostly fixed cost per block).

``read_from(..., prefix=d)`` also reuses the clean keys/values of positions < d (resample: the prompt and
its counterfactual share them). That needs the model's own key/value cache to hold every position: a
sliding-window cache shorter than the prompt keeps only the last window, so then it is not used.

A re-run block that holds no hook runs as **plain Hugging Face code**: ``plain_blocks(model)`` are copies of
the blocks with every bridge wrapper replaced by the module it wraps (sharing the weights), so none of the
bridge's per-call work runs — its normalisation layers, for one, compute each norm twice, once to feed their
hook points. A block whose hook points (or the block itself, past its pre-hooks) hold a hook runs through the
bridge. The plain copies are proven, once per model and dtype, to give the bridge's numbers bit for bit (so a
head whose output is zero still scores exactly 0), or not used.
Measured: ``benchmarks/bench_scorers.py`` (docs/history/measured-2026.md).
"""

from __future__ import annotations

import contextlib
import copy
import types

import torch
from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

from ..errors import InputError
from . import hooks
from .forward import agree, at_positions, final_resid, probe_tokens, proven_once

__all__ = ["Replay", "hooked", "plain_blocks", "plain_supported", "rows_supported", "run_plain", "supported"]

CACHE_KWARGS = {"past_key_values", "past_key_value", "layer_past", "use_cache"}
TILED = {"attention_mask", "position_ids", "position_embeddings", "alibi"}  # batch-first (alibi: batch × heads)
PASSED = {"cache_position", "output_attentions", "encoder_attention_mask", "encoder_hidden_states", "head_mask"}
SUFFIX_KWARGS = {"position_embeddings", "position_ids", "attention_mask", "cache_position"}


def _tile(name: str, value, n: int, copies: int):
    """A block kwarg for ``copies`` stacked copies of an n-item batch."""
    if copies == 1 or value is None or not isinstance(value, (torch.Tensor, tuple)):
        return value
    if isinstance(value, tuple):
        return tuple(_tile(name, v, n, copies) for v in value)
    if value.dim() == 0 or name not in TILED:
        return value
    if value.shape[0] == n or (name == "alibi" and value.shape[0] % n == 0):
        return value.repeat(copies, *([1] * (value.dim() - 1)))
    if value.shape[0] == 1:
        return value  # broadcast over the batch
    raise InputError(f"block argument {name} has batch size {value.shape[0]}, not {n}: cannot tile it")


class Replay:
    """Clean run of ``tokens`` (n, T): block inputs ``resid[l]`` (n, T, d_model), clean ``z[l]``
    (n, T, H, d_head), and ``clean_read``, the final residual stream at ``read_pos`` (n, P, d_model).

    ``full=None`` re-runs only blocks ≥ the start layer where ``supported(model)``, else the whole model;
    ``full=True`` / ``False`` forces one way; ``plain=None`` runs unhooked blocks as plain Hugging Face code
    where ``plain_supported(model)``, ``True`` / ``False`` forces it."""

    def __init__(self, model, tokens: torch.Tensor, read_pos: torch.Tensor, keep_z: bool = True, full=None, plain=None):
        self.model, self.tokens, self.read_pos = model, tokens, read_pos
        self.n, self.T = tokens.shape
        self.full = (not supported(model)) if full is None else full
        self.plain = (not self.full and plain_supported(model)) if plain is None else plain
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
                self.kwargs[layer] = {k: v for k, v in kwargs.items() if k not in CACHE_KWARGS}

        return hook

    def _keep_z(self, layer):
        def hook(z, hook):
            if self.z[layer] is None:
                self.z[layer] = z.detach().clone()
            return z

        return hook

    def known_kwargs(self) -> bool:
        """Whether every block argument is one the re-run knows how to tile or pass."""
        return all(set(kw) <= TILED | PASSED for kw in self.kwargs)

    def _blocks_from(self, start: int, resid: torch.Tensor, copies: int, prefix: int = 0, joins=None) -> torch.Tensor:
        x = resid
        plain = plain_blocks(self.model) if self.plain else None
        for layer in range(start, len(self.model.blocks)):
            if joins and joins.get(layer) and layer != start:
                x = torch.cat([x, self.resid[layer][:, prefix:].repeat(joins[layer], 1, 1)])
                copies += joins[layer]
            kwargs = {k: _tile(k, v, self.n, copies) for k, v in self.kwargs[layer].items()}
            if prefix:
                kwargs = _suffix_kwargs(kwargs, prefix, _PrefixKV(self.kv, prefix, copies))
            block = self.model.blocks[layer]
            out = block(x, **kwargs) if plain is None or hooked(block) else run_plain(block, plain[layer], x, kwargs)
            x = out[0] if isinstance(out, tuple) else out
        return x

    def rows(self, idx: torch.Tensor, width: int) -> Replay:
        """The clean run of rows ``idx`` at positions < ``width``, cut from this one: what a run of that narrower
        batch would capture (causal attention: positions < width never see the others). Block inputs, block
        arguments, key/value cache and the read-out are sliced; ``rows_supported(model)`` proves it."""
        if self.full or not all(set(kw) <= SUFFIX_KWARGS for kw in self.kwargs):
            raise InputError("this run's block arguments cannot be cut to a narrower batch: run the batch itself")
        idx = torch.as_tensor(idx)
        at = idx.to(self.resid[0].device)
        out = copy.copy(self)
        out.tokens, out.read_pos = self.tokens[idx, :width], self.read_pos[idx]
        out.n, out.T = len(idx), width
        out.resid = [x[at, :width] for x in self.resid]
        out.z = [None if z is None else z[at, :width] for z in self.z]
        out.kwargs = [_cut_kwargs(kw, slice(width), slice(width), at, self.n) for kw in self.kwargs]
        # a sliding-window cache keeps only the last positions: slicing it would give the wrong ones
        out.kv = _RowsKV(self.kv, at, width) if self._cache_holds_every_position() else None
        out.clean_read = self.clean_read[at]
        return out

    def supports_prefix(self) -> bool:
        """Whether ``read_from(..., prefix=d)`` can reuse the clean keys/values of positions < d: blocks re-run
        by hand, only arguments it can cut to the suffix, and a cache holding every position (no sliding
        window shorter than the prompt)."""
        return (
            not self.full and all(set(kw) <= SUFFIX_KWARGS for kw in self.kwargs) and self._cache_holds_every_position()
        )

    def _cache_holds_every_position(self) -> bool:
        """Whether the clean run's key/value cache keeps every position (not a sliding window shorter than it)."""
        return self.kv is not None and all(
            layer.keys is not None and layer.keys.shape[-2] == self.T for layer in self.kv.layers
        )

    def read_from(
        self, start: int, resid: torch.Tensor | None = None, copies: int = 1, fwd_hooks=(), prefix: int = 0, joins=None
    ) -> torch.Tensor:
        """Re-run blocks ≥ ``start`` on ``copies`` stacked copies of the batch; the final residual stream
        at the read positions (copies·n, P, d_model).

        ``prefix=d``: positions < d are known to be unchanged (e.g. resample ablation where the clean and
        counterfactual prompts share their first d tokens): only positions ≥ d are re-run, attending to the
        clean run's cached keys and values for the prefix. Hooks then see (copies·n, T − d, ...) tensors.

        ``joins={layer: c}``: at each later layer's input, c more copies of the clean batch join the re-run,
        after the rows already running, so ablations at several layers share one pass (a pass's fixed cost
        per block is most of a small pass's time on a CPU). Rows come out in join order: (Σ copies·n, P, d).
        """
        if prefix and not self.supports_prefix():
            raise InputError("this model cannot reuse the clean keys/values here: re-run with prefix=0")
        if self.full:
            if joins and set(joins) - {start}:
                raise InputError("a whole-model re-run cannot join copies at later layers: pass joins=None")
            if resid is not None:
                raise InputError("a whole-model re-run starts from the tokens: pass no resid")
            x = final_resid(self.model, self.tokens.repeat(copies, 1), fwd_hooks)
            return at_positions(x, self.read_pos)
        if resid is None:
            resid = self.resid[start][:, prefix:].repeat(copies, 1, 1)
        ctx = self.model.hooks(fwd_hooks=list(fwd_hooks)) if fwd_hooks else contextlib.nullcontext()
        with ctx:
            x = self._blocks_from(start, resid, copies, prefix, joins)
        return at_positions(x, self.read_pos - prefix)


def supported(model) -> bool:
    """Whether re-running blocks by hand reproduces ``model``'s clean run (proven once per model and dtype on
    a probe: from the first and the last block, with stacked copies, and with the prefix reuse where the
    model allows it)."""
    return proven_once(model, "replay", _prove)


def _prove(model) -> bool:
    tokens = probe_tokens(model)
    read = torch.arange(3, tokens.shape[1]).repeat(tokens.shape[0], 1)  # past the prefix the proof reuses
    try:
        r = Replay(model, tokens, read, keep_z=False, full=False, plain=False)
        if not r.known_kwargs():
            return False
        clean = r.clean_read.repeat(2, 1, 1)
        with torch.no_grad():
            runs = [r.read_from(0, copies=2), r.read_from(len(model.blocks) - 1, copies=2)]
            if r.supports_prefix():
                runs.append(r.read_from(0, copies=2, prefix=3))
        return all(agree(x, clean, clean.dtype) for x in runs)
    except Exception:  # an architecture whose blocks cannot be re-run this way: the whole model re-runs
        return False


def rows_supported(model) -> bool:
    """Whether ``Replay.rows`` gives what a run of the narrower batch itself gives (proven once per model and
    dtype on a probe: the read-out, re-runs from block 0 with stacked copies, and with the prefix reuse where
    the model allows it)."""
    return proven_once(model, "rows", _prove_rows)


def _prove_rows(model) -> bool:
    if not supported(model):
        return False
    tokens = probe_tokens(model, n=3)
    read = torch.full((3, 1), 4)
    idx = torch.tensor([2, 0])
    try:
        view = Replay(model, tokens, read, keep_z=False, full=False).rows(idx, 5)
        alone = Replay(model, tokens[idx, :5], read[idx], keep_z=False, full=False)
        if view.supports_prefix() != alone.supports_prefix():
            return False
        with torch.no_grad():
            pairs = [(view.clean_read, alone.clean_read), (view.read_from(0, copies=2), alone.read_from(0, copies=2))]
            if alone.supports_prefix():
                pairs.append((view.read_from(1, copies=2, prefix=3), alone.read_from(1, copies=2, prefix=3)))
        return all(agree(a, b, a.dtype) for a, b in pairs)
    except Exception:  # block arguments ``rows`` cannot cut: each batch runs itself
        return False


def plain_blocks(model) -> list[torch.nn.Module] | None:
    """Per layer, the block as plain Hugging Face modules (bridge wrappers unwrapped, weights shared), built
    once per model; None where the blocks are not bridge components."""
    if "_headlab_plain_blocks" not in model.__dict__:
        blocks = list(getattr(model, "blocks", ()))
        ok = blocks and all(isinstance(b, GeneralizedComponent) and b.original_component is not None for b in blocks)
        model.__dict__["_headlab_plain_blocks"] = [_unwrapped(b) for b in blocks] if ok else None
    return model.__dict__["_headlab_plain_blocks"]


def _unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """A shallow copy of ``module`` with every bridge component below it replaced by what it wraps."""
    while isinstance(module, GeneralizedComponent):
        module = module.original_component
    out = copy.copy(module)  # shares the parameter and buffer dicts: weights stay one set
    out._modules = {name: None if child is None else _unwrapped(child) for name, child in module._modules.items()}
    return out


def hooked(block: torch.nn.Module) -> bool:
    """Whether anything inside ``block`` holds a hook — a hook point's, or a PyTorch hook on any of its
    modules — or the block has forward hooks: then only the bridge runs it as the hooks expect (the block's
    own forward pre-hooks are run by ``run_plain``)."""
    if block._forward_hooks or block._backward_hooks or block._backward_pre_hooks:
        return True
    if "_headlab_inner_modules" not in block.__dict__:  # a bridge's layout is fixed once it is built
        block.__dict__["_headlab_inner_modules"] = [m for m in block.modules() if m is not block]
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in block.__dict__["_headlab_inner_modules"]
    )


def run_plain(block: torch.nn.Module, plain: torch.nn.Module, x: torch.Tensor, kwargs: dict):
    """``block(x, **kwargs)`` computed by its plain copy; the block's forward pre-hooks (e.g. a cancel check)
    still run first, as PyTorch would run them."""
    args = (x,)
    for hook_id, hook in block._forward_pre_hooks.items():
        if hook_id in block._forward_pre_hooks_with_kwargs:
            result = hook(block, args, kwargs)
            if result is not None:
                args, kwargs = result
        else:
            result = hook(block, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    return plain(*args, **kwargs)


def plain_supported(model) -> bool:
    """Whether the plain copies reproduce the bridge's blocks bit for bit on ``model`` (proven once per model and dtype:
    a re-run from block 0 with stacked copies, and with the prefix reuse where the model allows it)."""
    return proven_once(model, "plain", _prove_plain)


def _prove_plain(model) -> bool:
    if plain_blocks(model) is None or not supported(model):
        return False
    tokens = probe_tokens(model)
    read = torch.arange(3, tokens.shape[1]).repeat(tokens.shape[0], 1)
    try:
        bridged = Replay(model, tokens, read, keep_z=False, full=False, plain=False)
        plain = Replay(model, tokens, read, keep_z=False, full=False, plain=True)
        with torch.no_grad():
            pairs = [(plain.read_from(0, copies=2), bridged.read_from(0, copies=2))]
            if plain.supports_prefix():
                pairs.append((plain.read_from(0, copies=2, prefix=3), bridged.read_from(0, copies=2, prefix=3)))
        return all(torch.equal(a, b) for a, b in pairs)
    except Exception:  # an architecture whose unwrapped modules do not run alone: the bridge runs them
        return False


def _cut_kwargs(kwargs: dict, queries: slice, keys: slice = slice(None), rows=None, n: int = 0) -> dict:
    """Block kwargs (``SUFFIX_KWARGS`` only) cut to the query positions ``queries`` (the mask's key positions
    to ``keys``) and, given ``rows``, to those rows of an n-row run (a tensor broadcast over the batch stays)."""

    def cut(t):
        return t[rows.to(t.device)] if rows is not None and t.shape[0] == n else t

    out = {}
    for k, v in kwargs.items():
        if k == "position_embeddings":
            out[k] = tuple(cut(t)[:, queries] for t in v)
        elif k == "position_ids":
            out[k] = cut(v)[..., queries]
        elif k == "attention_mask":
            out[k] = None if v is None else cut(v)[..., queries, keys]
        elif k == "cache_position":
            out[k] = v[queries]
    return out


def _suffix_kwargs(kwargs: dict, prefix: int, kv) -> dict:
    """Block kwargs for positions ≥ ``prefix`` only, with ``kv`` supplying the prefix keys/values."""
    return {"past_key_values": kv, "use_cache": True, **_cut_kwargs(kwargs, slice(prefix, None))}


class _RowsKV:
    """A key/value cache's rows ``idx`` at positions < ``width`` (``Replay.rows``)."""

    def __init__(self, cache, idx: torch.Tensor, width: int):
        self.layers = [
            types.SimpleNamespace(keys=layer.keys[idx][:, :, :width], values=layer.values[idx][:, :, :width])
            for layer in cache.layers
        ]


class _PrefixKV:
    """Stands in for a key/value cache: prepends the clean run's keys/values of positions < prefix."""

    def __init__(self, cache, prefix: int, copies: int):
        self.cache, self.prefix, self.copies = cache, prefix, copies

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int, *args, **kwargs):
        layer = self.cache.layers[layer_idx]
        pk = layer.keys[:, :, : self.prefix].repeat(self.copies, 1, 1, 1)
        pv = layer.values[:, :, : self.prefix].repeat(self.copies, 1, 1, 1)
        return torch.cat([pk, k], dim=-2), torch.cat([pv, v], dim=-2)
