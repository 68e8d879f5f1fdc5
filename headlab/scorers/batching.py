"""How scorers cut encoded tasks into forward passes, and the per-position mean z (mean ablation).

A no-grad pass (exact ablation, gating's clean run) holds ``engine.budget.tokens(model, "exact")`` tokens:
from the device's free memory, capped at 16,384 on a CPU (keeps the embedded model's sweep under 6 GB).
"""

from __future__ import annotations

import torch

from ..engine import budget
from ..engine.forward import device_of, z_of
from ..metrics import Encoded

__all__ = ["item_batches", "mean_z", "prefix_batches", "seqs_per_pass"]


def seqs_per_pass(model, enc: Encoded, batch_size: int | None) -> int:
    """Sequences per no-grad forward pass: ``batch_size``, or as many rows of ``enc`` as the budget holds."""
    T = enc.tokens.shape[1]
    return batch_size or max(1, budget.tokens(model, "exact", length=T) // T)


def item_batches(model, enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    """Consecutive item batches of ``seqs_per_pass`` items."""
    size = seqs_per_pass(model, enc, batch_size)
    return [torch.arange(s, min(s + size, enc.n)) for s in range(0, enc.n, size)]


def prefix_batches(model, enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    """Item batches grouped by where each counterfactual first differs from its prompt, so that a batch
    shares a long unchanged prefix (see ``Replay.read_from(prefix=...)``)."""
    size = seqs_per_pass(model, enc, batch_size)
    first = enc.first_differences()
    batches = []
    for d in torch.unique(first).tolist():
        idx = torch.nonzero(first == d).flatten()
        batches += [idx[s : s + size] for s in range(0, len(idx), size)]
    return batches


def mean_z(model, enc: Encoded, batches) -> list[torch.Tensor]:
    """Per layer (T, H, d_head), on the model's device and in its dtype: mean z over the items whose sequence
    reaches each position (summed in float32)."""
    device, dtype = device_of(model), next(model.parameters()).dtype
    sums, count = None, torch.zeros(enc.tokens.shape[1], device=device)
    for idx in batches:
        sub = enc.subset(idx)
        mask = (torch.arange(sub.tokens.shape[1])[None] < sub.lengths[:, None]).float().to(device)  # (b, T)
        layer_sums = [(z.float() * mask[:, :, None, None].to(z.device)).sum(0) for z in z_of(model, sub.tokens)]
        sums = layer_sums if sums is None else [a + b for a, b in zip(sums, layer_sums)]
        count += mask.sum(0)
    return [(s / count.to(s.device).clamp(min=1)[:, None, None]).to(dtype) for s in sums]
