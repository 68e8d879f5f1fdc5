"""How scorers cut encoded tasks into forward passes, and the per-position mean z (mean ablation).

``TOKEN_BUDGET`` tokens per no-grad forward pass (exact ablation, gating) keeps the embedded model's
sweep well under 6 GB.
"""

from __future__ import annotations

import torch

from ..engine.forward import z_of
from ..metrics import Encoded

TOKEN_BUDGET = 16384  # tokens per forward pass


def seqs_per_pass(enc: Encoded, batch_size: int | None) -> int:
    """Sequences per forward pass: ``batch_size``, or as many rows of ``enc`` as fit ``TOKEN_BUDGET``."""
    return batch_size or max(1, TOKEN_BUDGET // enc.tokens.shape[1])


def item_batches(enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    """Consecutive item batches of ``seqs_per_pass`` items."""
    size = seqs_per_pass(enc, batch_size)
    return [torch.arange(s, min(s + size, enc.n)) for s in range(0, enc.n, size)]


def prefix_batches(enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    """Item batches grouped by where each counterfactual first differs from its prompt, so that a batch
    shares a long unchanged prefix (see ``Replay.read_from(prefix=...)``)."""
    size = seqs_per_pass(enc, batch_size)
    first = enc.first_differences()
    batches = []
    for d in torch.unique(first).tolist():
        idx = torch.nonzero(first == d).flatten()
        batches += [idx[s : s + size] for s in range(0, len(idx), size)]
    return batches


def mean_z(model, enc: Encoded, batches) -> list[torch.Tensor]:
    """Per layer (T, H, d_head): mean z over the items whose sequence reaches each position."""
    sums, count = None, torch.zeros(enc.tokens.shape[1])
    for idx in batches:
        sub = enc.subset(idx)
        mask = (torch.arange(sub.tokens.shape[1])[None] < sub.lengths[:, None]).float()  # (b, T)
        layer_sums = [(z * mask[:, :, None, None]).sum(0) for z in z_of(model, sub.tokens)]
        sums = layer_sums if sums is None else [a + b for a, b in zip(sums, layer_sums)]
        count += mask.sum(0)
    return [s / count.clamp(min=1)[:, None, None] for s in sums]
