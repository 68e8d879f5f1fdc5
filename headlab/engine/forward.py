"""Plain forward passes of a bridge, stopped before the unembedding, and reading per-head ``z``.

``final_resid`` runs the model to its final norm and returns the residual stream there, so no
full-vocabulary logits are computed; ``to_logits`` turns that stream into the model's own logits (its final
norm, unembedding and final-logit softcap, e.g. Gemma 2's tanh(x/30)·30), and ``check_logits`` proves, once
per model, that together they reproduce the model's own forward; ``z_of`` / ``keep_z`` read every layer's
``hook_z``; ``at_positions`` / ``unembed_at`` read the positions a metric needs. Token tensors may live on
the CPU: they are moved to the model's device here.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import HeadlabError
from . import hooks

__all__ = [
    "UnsupportedModel",
    "agree",
    "at_positions",
    "check_logits",
    "device_of",
    "final_resid",
    "frozen",
    "gather_positions",
    "interpolate_z",
    "keep_z",
    "logit_factor",
    "probe_tokens",
    "proven_once",
    "softcap",
    "to_logits",
    "tolerance",
    "unembed_at",
    "z_of",
]


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
            model(tokens.to(device_of(model)))
    except _Stop:
        pass
    finally:
        handle.remove()
    return box["resid"]


@contextlib.contextmanager
def frozen(model):
    """Weights without ``requires_grad`` meanwhile: a backward then computes activation gradients only."""
    were = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, g in zip(model.parameters(), were):
            p.requires_grad_(g)


def device_of(model) -> torch.device:
    """Where the model's input embedding lives (the first device of a device map)."""
    return next(model.parameters()).device


def softcap(model) -> float | None:
    """The final-logit softcap c of ``model`` (logits = c · tanh(x / c)), or None."""
    cap = getattr(model.cfg, "output_logits_soft_cap", None)
    return float(cap) if cap and cap > 0 else None


def logit_factor(model) -> float:
    """The factor the model multiplies its unembedding's output by (Cohere's ``logit_scale``, 1 / Granite's
    ``logits_scaling``), 1.0 for most models."""
    factor = 1.0
    if getattr(model.cfg, "logits_scaling", None):
        factor /= float(model.cfg.logits_scaling)
    if getattr(model.cfg, "logit_scale", None):
        factor *= float(model.cfg.logit_scale)
    return factor


def to_logits(model, x: torch.Tensor) -> torch.Tensor:
    """Final residual stream x (..., d_model) → the model's logits (..., V): final norm, unembedding, the
    model's logit factor, softcap."""
    out = model.unembed(model.ln_final(x))
    factor = logit_factor(model)
    out = out if factor == 1.0 else out * factor
    cap = softcap(model)
    return out if cap is None else cap * torch.tanh(out / cap)


class UnsupportedModel(HeadlabError, RuntimeError):
    """headlab cannot reproduce this model's computation exactly; the message says what differs."""


def tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of a proof that two computations of one model agree: float32 1e-4, else 2e-2."""
    return 1e-4 if dtype == torch.float32 else 2e-2


def agree(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> bool:
    """max |a − b| ≤ tolerance(dtype) · max(1, max |b|), in float32."""
    a, b = a.float(), b.float()
    return bool((a - b).abs().max() <= tolerance(dtype) * max(1.0, float(b.abs().max())))


def probe_tokens(model, n: int = 2, length: int = 7) -> torch.Tensor:
    """(n, length) fixed token ids every model's vocabulary holds, for the proofs of the fast paths."""
    V = int(model.cfg.d_vocab)
    return (torch.arange(n * length).view(n, length) * 7 + 3) % min(V, 250) + 1


def structure(model) -> tuple:
    """What a proof of a fast path holds for: the model's dtype and its whole config (``cache.config_fingerprint``),
    so a config edited in place (a softcap, a window) is proven again."""
    from ..models import config_fingerprint

    return next(model.parameters()).dtype, config_fingerprint(model)


def proven_once(model, name: str, prove) -> bool:
    """``prove(model)``'s verdict for this model's structure (dtype and config), computed once and kept on the
    model; never kept while hooks are on it (a proof then proves the hooked model)."""
    known = model.__dict__.setdefault(f"_headlab_{name}", {})
    key = structure(model)
    if key not in known:
        verdict = prove(model)
        if hooks.hooks_active(model):
            return verdict
        known[key] = verdict
    return known[key]


def check_logits(model) -> None:
    """Prove once per model (and dtype) that ``logits(final_resid(...))`` equals the model's own forward;
    raise ``UnsupportedModel`` naming the difference otherwise."""
    dtype, key = next(model.parameters()).dtype, structure(model)
    if getattr(model, "_headlab_logits_ok", None) == key:
        return
    tokens = probe_tokens(model)
    with torch.no_grad():
        own = model(tokens.to(device_of(model)))
        ours = to_logits(model, final_resid(model, tokens))
    if not agree(ours, own, dtype):
        raise UnsupportedModel(
            f"{type(model.original_model).__name__}: headlab's readout (final norm → unembedding → logit factor → "
            f"softcap) differs from the model's own logits by {float((ours.float() - own.float()).abs().max()):.3g}: "
            "its output has a step headlab does not know, so its maps would be wrong"
        )
    model._headlab_logits_ok = key


def gather_positions(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x (b, T, d), pos (b, P) → (b, P, d)."""
    return x.gather(1, pos.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def at_positions(x: torch.Tensor, read_pos: torch.Tensor) -> torch.Tensor:
    """x (k·n, T, d) → (k·n, P, d) at ``read_pos`` (n, P), tiled over the k copies."""
    return gather_positions(x, read_pos.to(x.device).repeat(x.shape[0] // read_pos.shape[0], 1))


def unembed_at(model, x: torch.Tensor, read_pos: torch.Tensor) -> torch.Tensor:
    """Final residual (k·n, T, d) → logits (k·n, P, V) at ``read_pos`` (n, P), tiled over the k copies."""
    return to_logits(model, at_positions(x, read_pos))


def keep_z(zs: list, grad: bool = False):
    """Hooks keeping each layer's z in ``zs``: detached, or with ``grad`` attached to a graph that starts at
    layer 0's z (nothing below it is differentiated)."""

    def keep(layer):
        def hook(z, hook):
            if not grad or layer == 0:
                z = z.detach().requires_grad_(grad)
            zs[layer] = z
            return z

        return hook

    return [(hooks.z(layer), keep(layer)) for layer in range(len(zs))]


def interpolate_z(zs: list, live: list, ablated: list, alpha: float):
    """Hooks putting every layer on the path from the ablated run to the clean one: z̃ = z_ablated + α (z −
    z_ablated) where the run computes z (``ablated[l]`` shaped like layer l's z). Keeps z̃ in ``zs`` with grad
    (the graph starts at layer 0's z̃, as ``keep_z``) and z, detached, in ``live``."""

    def interpolate(layer):
        def hook(z, hook):
            live[layer] = z.detach()
            z = z.detach() if layer == 0 else z
            abl = ablated[layer].to(z.device, z.dtype)
            out = abl + alpha * (z - abl)
            zs[layer] = out.requires_grad_(True) if layer == 0 else out
            return zs[layer]

        return hook

    return [(hooks.z(layer), interpolate(layer)) for layer in range(len(zs))]


def z_of(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (n, T, H, d_head): z of a plain no-grad run (stopped before the unembedding)."""
    zs = [None] * len(model.blocks)
    with torch.no_grad():
        final_resid(model, tokens, keep_z(zs))
    return zs
