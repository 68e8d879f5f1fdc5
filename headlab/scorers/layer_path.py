"""Integrated gradients one layer at a time: ``score(method="attribution", steps=m, path="layers")``.

The default path (``path="activations"``) moves every layer's z from the ablated run to the clean one at
once, so a head's gradient is taken where every other layer is half-ablated too: where layers act together
that is a run no single-head ablation ever sees. EAP-IG's activation form (``get_scores_ig_activations``)
moves **one layer at a time**: for layer l, z̃_l = z_ablated + α_k (z_l − z_ablated) at α_k = k / m, every
other layer computing from the run as it is (the layers below are clean), and a head of layer l scores

    (1/m) Σ_k Σ_pos,d (z_l − z_ablated) · ∂metric/∂z̃_l(α_k)

— the Riemann sum of the layer's own path; the sum over a layer's heads tends to the drop with that whole
layer ablated (completeness per layer). Its last point, α = 1, is the clean run for every layer, plain
attribution's gradient (computed on attribution's packed path, once for all layers); so ``steps=1`` is plain
attribution and each further point costs a forward and a backward *from layer l up*, per layer.

Fast path (``engine.replay``, exact ablation's engine): the layers below l are clean, so each batch runs
clean once, keeping every block's input, and the m − 1 inner points of layer l are copies of the batch that
re-run from block l with z̃_l a leaf tensor (z_l is the clean z there, so z̃_l is fixed before the re-run);
the copies of the next layers join the same pass at their own layer (``Replay.read_from(joins=...)``), and
one backward of the summed metric gives every copy its own gradient (rows never mix). A pass with gradients keeps
every block's activations, so batches are cut for one layer's copies to fit ``budget.tokens(model, "packed")``.
Resampled items re-run only positions past their shared prefix (z_cf = z there, so z − z_ablated is 0).

Work: per layer m − 1 re-runs with gradients where exact ablation makes one re-run per head without; measured on
the embedded model, a re-run with its backward costs 2.3 plain ones (the forward 1.4, keeping what the backward
needs), so ≈ 2.3 (m − 1) / H of exact's sweep on H heads per layer (docs/history/measured-2026.md). Proven equal to
``headlab.testing.reference.integrated_gradients(path="layers")`` (one full forward and backward per layer and
point) in the tests and on every conformance architecture.
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine import budget, hooks
from ..engine.forward import frozen
from ..engine.progress import bar as progress_bar
from ..metrics import Encoded, metric_at
from .ablation import batch_replays, sources
from .base import TaskSize
from .batching import item_batches, prefix_batches, seqs_per_pass

__all__ = ["layer_pass", "layer_path_cost", "layer_points"]


def inner_points(steps: int) -> list[float]:
    """A layer's path points below the clean run: α_k = k / steps, k = 1 … steps − 1."""
    return [k / steps for k in range(1, steps)]


def layer_path_cost(size: TaskSize, n_layers: int, steps: int) -> float:
    """Block-token passes of the inner points (attribution's α = 1 run not included): the clean and source
    runs, then per layer steps − 1 copies re-run from it, forward and backward (3 passes: the backward counts
    twice)."""
    reruns = 3 * (steps - 1) * n_layers * (n_layers + 1) / 2 * size.rerun_tokens
    return size.n_items * (2 * n_layers * size.n_tokens + reruns)


def layer_points(model, enc: Encoded, ablation: str, steps: int, batch_size, progress: bool) -> np.ndarray:
    """Σ_k<m Σ_pos,d (z_l − z_ablated) · ∂metric/∂z̃_l(α_k) per item and head, each layer on its own path (not
    yet divided by m; the clean point α = 1 not included): (n, L, H) float32."""
    L, H = len(model.blocks), model.cfg.n_heads
    out = np.zeros((enc.n, L, H), dtype=np.float32)
    points = inner_points(steps)
    if not points:
        return out
    T = enc.tokens.shape[1]
    per_pass = budget.tokens(model, "packed", length=T)  # tokens of a pass with gradients
    rows = batch_size or max(1, per_pass // (T * len(points)))  # a layer's copies of a batch fit in one pass
    batches = (prefix_batches if ablation == "resample" else item_batches)(model, enc, rows)
    source = sources(model, enc, ablation, batches)
    replays = batch_replays(model, enc, ablation, batches, seqs_per_pass(model, enc, batch_size))
    widest = max(len(idx) * (sub.tokens.shape[1] - prefix) for idx, sub, _, prefix in replays)
    layers_per_pass = 1 if replays[0][2].full else max(1, per_pass // (widest * len(points)))
    groups = [list(range(s, min(s + layers_per_pass, L))) for s in range(0, L, layers_per_pass)]
    bar = progress_bar(len(groups) * len(replays), f"{enc.task} · attribution/{ablation} · layers", progress)
    with frozen(model):
        for group in groups:
            for idx, sub, r, prefix in replays:
                for layer, term in layer_pass(model, r, sub, group, points, source, idx, prefix).items():
                    out[idx.numpy(), layer] += term.cpu().numpy()
                bar.update(1)
    bar.close()
    return out


def layer_pass(model, r, sub: Encoded, layers: list[int], points, source, idx, prefix: int):
    """One joined re-run of replay ``r``: per layer of ``layers`` (ascending), len(points) copies join at that
    layer with z̃ = z_ablated + α (z − z_ablated) as a leaf; one backward. {layer: (n, H) Σ_k,pos,d (z − z_ablated) ·
    ∂metric/∂z̃}, float32."""
    n, c = len(idx), len(points)
    leaves, diffs, fwd = {}, {}, []
    for j, layer in enumerate(layers):
        src = source(idx, layer, r, prefix)
        fwd.append((hooks.z(layer), interpolate_hook(layer, points, n, j * c, src, leaves, diffs)))
    with torch.enable_grad():
        read = r.read_from(layers[0], copies=c, fwd_hooks=fwd, prefix=prefix, joins={layer: c for layer in layers})
        grads = torch.autograd.grad(metric_at(model, read, sub).sum(), [leaves[layer] for layer in layers])
    out = {}
    for layer, grad in zip(layers, grads):
        grad = grad.float().view(c, n, *grad.shape[1:])
        out[layer] = (diffs[layer][None] * grad).sum((0, 2, 4))
    return out


def interpolate_hook(layer: int, points, n: int, first: int, src, leaves: dict, diffs: dict):
    """Hook on z of stacked copies of an n-item batch: copies first … first + len(points) − 1 (the ones joining
    at ``layer``, whose z is the clean run's) get z̃ = src + α_k (z − src) as a leaf tensor (``leaves[layer]``);
    ``diffs[layer]`` keeps z − src (n, T, H, d_head) float32. ``src`` None: zero ablation."""
    c = len(points)

    def hook(z, hook):
        rows = slice(first * n, (first + c) * n)
        clean = z[rows][:n].detach()
        abl = torch.zeros_like(clean) if src is None else src.to(clean.dtype)
        leaf = torch.cat([abl + alpha * (clean - abl) for alpha in points]).requires_grad_()
        leaves[layer], diffs[layer] = leaf, (clean.float() - abl.float())
        return torch.cat([z[: rows.start], leaf, z[rows.stop :]])

    return hook
