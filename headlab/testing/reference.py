"""Slow, plain references that the fast scorers are proven against in the tests (not a scorer).

Each one runs only whole forwards of the bridge (``model(tokens)``, ``model.run_with_hooks``) and reads the
metric from the model's own full logits (``metrics.from_logits``), so nothing of ``headlab.engine``'s
replays, packing or ``metrics.metric_at`` enters it:

- ``transformerlens_patching``: TransformerLens' own head patching (resample ablation).
- ``per_head_ablation``: exact ablation, one full forward per head, zero / mean / resample.
- ``gate_gradient``: attribution, Σ_pos,d (z − z_ablated) · ∂metric/∂z from one full forward and backward;
  the zero form as the gradient of per-head multiplicative gates at 1 (Michel et al.).
- ``integrated_gradients``: attribution integrated along a path from the ablated run to the clean one, one
  full forward and backward per point: ``path="activations"`` (every layer's z interpolated at once, what
  ``score(steps=)`` computes), ``path="layers"`` (one layer's z at a time, the others clean: EAP-IG-activations'
  form, m − 1 points per layer) or ``path="inputs"`` (the input embeddings interpolated, resample only: EAP-IG's
  original form). The three are measured against exact ablation in ``benchmarks/bench_scorers.py`` section 5.

All return (n_layers, n_heads) float64: the mean over items of clean metric − metric with the head changed.
Metrics are computed in float32 from the model's logits, on the model's device.
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine.forward import gather_positions
from ..errors import InputError
from ..metrics import Encoded, encode, from_logits
from ..tasks import Task

__all__ = [
    "ABLATIONS",
    "PATHS",
    "gate_gradient",
    "integrated_gradients",
    "per_head_ablation",
    "transformerlens_patching",
]


def transformerlens_patching(model, task: Task, metric: str = "logit_diff", index_df=None):
    """TransformerLens' own head patching with the counterfactual's z patched into the clean run, as clean
    metric − patched metric. Returns (n_layers, n_heads), or one value per ``index_df`` row (columns layer,
    head) to patch only those heads. Slow (one full forward per head): for checking. As in ``score``, only the
    items whose counterfactual has its prompt's token length and differs from it are patched."""
    from transformer_lens import patching

    enc = encode(task, model.tokenizer, metric, warn=False)
    enc = enc.subset(torch.nonzero(enc.cf_ok).flatten())
    _, cf_cache = model.run_with_cache(enc.cf_tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    fn = lambda logits: from_logits(gather_positions(logits, enc.read_pos), enc).mean()  # noqa: E731
    with torch.no_grad():
        clean = fn(model(enc.tokens))
        if index_df is None:
            patched = patching.get_act_patch_attn_head_out_all_pos(model, enc.tokens, cf_cache, fn)
        else:
            patched = patching.generic_activation_patch(
                model,
                enc.tokens,
                cf_cache,
                fn,
                patch_setter=patching.layer_head_vector_patch_setter,
                activation_name="z",
                index_df=index_df,
            )
    return (clean - patched).numpy()


ABLATIONS = ("zero", "mean", "resample")


def per_head_ablation(model, task: Task, ablation: str = "zero", metric: str = "logit_diff") -> np.ndarray:
    """Exact ablation: per head one full forward with its ``hook_z`` (batch × pos × head × d_head) replaced at
    every position by 0, the per-position mean over the items reaching it, or the counterfactual run's z.
    Returns (n_layers, n_heads) float64: mean over items of clean − ablated metric."""
    enc, tokens = _prepared(model, task, ablation, metric)
    with torch.no_grad():
        clean = _metric(model(tokens), enc)
        replacement = _replacements(model, enc, ablation)
        out = np.zeros((len(model.blocks), model.cfg.n_heads))
        for layer in range(len(model.blocks)):
            for head in range(model.cfg.n_heads):

                def hook(z, hook, layer=layer, head=head):
                    z = z.clone()
                    z[:, :, head] = 0.0 if replacement is None else replacement[layer][:, :, head].to(z.dtype)
                    return z

                logits = model.run_with_hooks(tokens, fwd_hooks=[(_z_name(layer), hook)])
                out[layer, head] = (clean - _metric(logits, enc)).double().mean().item()
    return out


def gate_gradient(model, task: Task, ablation: str = "zero", metric: str = "logit_diff") -> np.ndarray:
    """Attribution from one full forward and backward: mean over items of Σ_pos,d (z − z_ablated) · ∂metric/∂z.

    Zero: the gradient of the metric w.r.t. per-head gates g (n_layers, n_heads) multiplying z, at g = 1.
    Mean / resample: ∂metric/∂z_l read as the gradient of a zero perturbation added to each layer's z.
    Returns (n_layers, n_heads) float64."""
    enc, tokens = _prepared(model, task, ablation, metric)
    L, H = len(model.blocks), model.cfg.n_heads
    with torch.no_grad():
        replacement = _replacements(model, enc, ablation)
    if ablation == "zero":
        gates = torch.ones((L, H), device=tokens.device, requires_grad=True)
        hooks = [(_z_name(l), lambda z, hook, l=l: z * gates[l].to(z.dtype)[None, None, :, None]) for l in range(L)]
        with torch.enable_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
            (grad,) = torch.autograd.grad(_metric(logits, enc).sum(), gates)
        return (grad.double() / enc.n).cpu().numpy()
    zs, bumps = [None] * L, [None] * L

    def keep(layer):
        def hook(z, hook):
            zs[layer] = z.detach()
            bumps[layer] = torch.zeros_like(z, requires_grad=True)
            return z + bumps[layer]

        return hook

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(_z_name(l), keep(l)) for l in range(L)])
        grads = torch.autograd.grad(_metric(logits, enc).sum(), bumps)
    out = [((z.float() - replacement[l].float()) * g.float()).sum((0, 1, 3)) for l, (z, g) in enumerate(zip(zs, grads))]
    return (torch.stack(out).double() / enc.n).cpu().numpy()


PATHS = ("activations", "layers", "inputs")


def integrated_gradients(
    model, task: Task, ablation: str = "resample", metric: str = "logit_diff", steps: int = 4, path="activations"
) -> np.ndarray:
    """Integrated-gradient attribution, mean over items of (1/steps) Σ_k Σ_pos,d (z − z_ablated) · ∂metric/∂z̃
    at α_k = k / steps. ``path="activations"``: at every layer z̃ = z_ablated + α (z − z_ablated), z being what
    the run computes (``steps=1``: ``gate_gradient``). ``path="layers"``: for each layer l its own path, z̃ as
    above at layer l only and every other layer clean; the last point (α = 1) is the clean run for every layer,
    so ``steps=1`` is ``gate_gradient`` too, and as steps grow the sum over a layer's heads tends to the drop
    with that whole layer's heads ablated. ``path="inputs"`` (resample): the token embeddings are
    e_cf + α (e − e_cf), z̃ the run's own z, and z − z_ablated the clean run's minus the counterfactual's.
    Returns (n_layers, n_heads) float64."""
    if path not in PATHS:
        raise InputError(f"unknown path {path!r}: choose from {PATHS}")
    if path == "inputs" and ablation != "resample":
        raise InputError(f"path='inputs' needs a counterfactual prompt; ablation={ablation!r} has none")
    enc, tokens = _prepared(model, task, ablation, metric)
    L = len(model.blocks)
    if path == "inputs":
        total = _inputs_path(model, enc, tokens, steps)
    else:
        with torch.no_grad():
            rep = _replacements(model, enc, ablation)
        if path == "activations":
            total = sum(_path_point(model, enc, tokens, rep, k / steps, range(L)) for k in range(1, steps + 1))
        else:
            total = _path_point(model, enc, tokens, rep, 1.0, range(L))
            for layer in range(L):
                for k in range(1, steps):
                    total[layer] += _path_point(model, enc, tokens, rep, k / steps, [layer])[layer]
    return (total / steps / enc.n).cpu().numpy()


def _path_point(model, enc: Encoded, tokens, replacement, alpha: float, layers) -> torch.Tensor:
    """One full forward and backward with z̃ = z_ablated + α (z − z_ablated) at ``layers`` (every other layer
    clean): Σ_items,pos,d (z − z_ablated) · ∂metric/∂z̃ per head of those layers, zero elsewhere. (L, H) float64."""
    L, H = len(model.blocks), model.cfg.n_heads
    zs, lives = {}, {}

    def interpolate(z, hook, layer):
        lives[layer] = z.detach()
        abl = torch.zeros_like(z) if replacement is None else replacement[layer].to(z.dtype)
        zs[layer] = abl + alpha * (z - abl)
        return zs[layer]

    hooks = [(_z_name(l), lambda z, hook, l=l: interpolate(z, hook, l)) for l in layers]
    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        grads = torch.autograd.grad(_metric(logits, enc).sum(), list(zs.values()))
    out = torch.zeros((L, H), dtype=torch.float64, device=tokens.device)
    for layer, g in zip(zs, grads):
        abl = 0.0 if replacement is None else replacement[layer].float()
        out[layer] = ((lives[layer].float() - abl) * g.float()).sum((0, 1, 3)).double()
    return out


def _inputs_path(model, enc: Encoded, tokens, steps: int) -> torch.Tensor:
    """EAP-IG's input path (resample): the embeddings e_cf + α (e − e_cf), the gradient at each layer's own z,
    times the clean run's z minus the counterfactual's. Summed over items and points, (L, H) float64."""
    L = len(model.blocks)
    wanted = lambda name: name.endswith("attn.hook_z") or name == "hook_embed"  # noqa: E731
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(tokens, names_filter=wanted)
        _, cf_cache = model.run_with_cache(enc.cf_tokens.to(tokens.device), names_filter=wanted)
    e_clean, e_cf = clean_cache["hook_embed"], cf_cache["hook_embed"]
    total = torch.zeros((L, model.cfg.n_heads), dtype=torch.float64, device=tokens.device)
    for k in range(1, steps + 1):
        alpha = k / steps
        zs = [None] * L

        def keep(z, hook, layer):
            zs[layer] = z
            return z

        hooks = [(_z_name(l), lambda z, hook, l=l: keep(z, hook, l)) for l in range(L)]
        hooks.append(("hook_embed", lambda e, hook: e_cf + alpha * (e_clean - e_cf)))
        with torch.enable_grad():
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
            grads = torch.autograd.grad(_metric(logits, enc).sum(), zs)
        for l, g in enumerate(grads):
            diff = clean_cache[_z_name(l)].float() - cf_cache[_z_name(l)].float()
            total[l] += (diff * g.float()).sum((0, 1, 3)).double()
    return total


def _prepared(model, task: Task, ablation: str, metric: str) -> tuple[Encoded, torch.Tensor]:
    """The task encoded for ``metric`` (resample: only items whose counterfactual has the prompt's token
    length, as ``score()``), and its tokens on the model's device."""
    if ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}: choose from {ABLATIONS}")
    enc = encode(task, model.tokenizer, metric, warn=ablation == "resample")
    if ablation == "resample":
        enc = enc.subset(torch.nonzero(enc.cf_ok).flatten())
        if enc.n == 0:
            raise InputError(f"task {task.name!r}: no counterfactual has its prompt's token length")
    return enc, enc.tokens.to(_device(model))


def _replacements(model, enc: Encoded, ablation: str) -> list[torch.Tensor] | None:
    """Per layer the z that replaces a head's (n, T, H, d_head), float32; None for zero ablation.

    Mean: at each position, the mean of z over the items whose unpadded sequence reaches that position."""
    if ablation == "zero":
        return None
    device = _device(model)
    tokens = enc.cf_tokens if ablation == "resample" else enc.tokens
    _, cache = model.run_with_cache(tokens.to(device), names_filter=lambda name: name.endswith("attn.hook_z"))
    zs = [cache[_z_name(l)].float() for l in range(len(model.blocks))]
    if ablation == "resample":
        return zs
    T = enc.tokens.shape[1]
    reaches = (torch.arange(T)[None] < enc.lengths[:, None]).float().to(device)  # (n, T)
    count = reaches.sum(0).clamp(min=1)[:, None, None]  # (T, 1, 1)
    means = [(z * reaches[:, :, None, None]).sum(0) / count for z in zs]  # (T, H, d_head)
    return [m.expand(enc.n, -1, -1, -1) for m in means]


def _metric(logits: torch.Tensor, enc: Encoded) -> torch.Tensor:
    """Per-item metric (n,) float32, on the CPU, from full logits (n, T, V) on any device."""
    return from_logits(gather_positions(logits.float(), enc.read_pos.to(logits.device)).cpu(), enc)


def _z_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def _device(model) -> torch.device:
    return next(model.parameters()).device
