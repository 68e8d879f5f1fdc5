"""Attribution patching: ``score(method="attribution")``.

One forward + backward (plus one counterfactual forward for resample) scores all heads at once:
Σ_pos,d (z_clean − z_ablated) · ∂metric/∂z, the first-order estimate of exact ablation's drop.

Every task's items (of one metric) are pooled and batched together, so that short tasks fill a pass
together: packed end to end where the model allows it (``engine.packing``), else sorted by length and
right-padded. Per batch: one clean forward with ∂metric/∂z kept for every layer, one backward (activation
gradients only: the weights are frozen meanwhile), and a no-grad counterfactual run for resampled items.
The packed path is proven equal to the padded one in the tests.
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine import budget, packing
from ..engine.forward import at_positions, device_of, final_resid, keep_z, z_of
from ..engine.packing import Pack, Run, Trie
from ..engine.progress import each
from ..metrics import Encoded, metric_at
from .base import ABLATION_VARIANTS, Scorer, TaskResult, register
from .batching import item_batches, mean_z

PACKED_TOKEN_BUDGET = budget.CAPS["packed"]  # per packed forward + backward on a CPU (fewer, fuller: measured)
PADDED_TOKEN_BUDGET = budget.CAPS["padded"]  # per right-padded one on a CPU: larger were slower (measured)


@register
class Attribution(Scorer):
    name = "attribution"
    summary = "first-order estimate of ablation: (z − z_ablated) · ∂metric/∂z, every head in one pass"
    order = 10
    variants = ABLATION_VARIANTS
    pools = True

    def run(self, model, jobs, options, batch_size, progress):
        outs = attribute(model, [(job.enc, job.ablation) for job in jobs], batch_size, progress)
        return [TaskResult(per_example, clean) for per_example, clean in outs]


def pooled_batches(enc: Encoded, batch_size: int | None, tokens: int | None = None) -> list[torch.Tensor]:
    """Row batches of a pooled encoding, shortest rows first: ``batch_size`` rows each, or (default) as
    many as keep rows × longest row ≤ ``tokens`` (default ``PADDED_TOKEN_BUDGET``)."""
    tokens = tokens or PADDED_TOKEN_BUDGET
    order = torch.argsort(enc.lengths, stable=True)
    if batch_size:
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        longest = int(enc.lengths[order[end - 1]])
        if end - start > 1 and (end - start) * longest > tokens:
            batches.append(order[start : end - 1])
            start = end - 1
    return batches + [order[start:]]


def packed_batches(enc: Encoded, batch_size: int | None, tokens: int | None = None) -> tuple[list[torch.Tensor], int]:
    """Item batches of a pooled encoding for packed runs, and the row width: the items are packed into rows
    as wide as the longest item, and the rows cut into batches of ``batch_size`` rows, or (default) as many
    as keep rows × width ≤ ``tokens`` (default ``PACKED_TOKEN_BUDGET``)."""
    pack = Pack(torch.zeros_like(enc.lengths), enc.lengths)
    rows = batch_size or max(1, (tokens or PACKED_TOKEN_BUDGET) // pack.width)
    batches = [torch.nonzero((pack.row >= s) & (pack.row < s + rows)).flatten() for s in range(0, pack.n_rows, rows)]
    return batches, pack.width


def attribute(model, jobs: list[tuple[Encoded, str]], batch_size, progress: bool):
    """First-order head scores for encoded tasks ``jobs`` [(enc, ablation)]: [(per_example (n, L, H), clean
    (n,))] per job."""
    L, H = len(model.blocks), model.cfg.n_heads
    means = [mean_z(model, enc, item_batches(model, enc, batch_size)) if abl == "mean" else None for enc, abl in jobs]
    outs = [(np.zeros((enc.n, L, H), dtype=np.float32), np.zeros(enc.n, dtype=np.float32)) for enc, _ in jobs]
    longest = max(int(enc.lengths.max()) for enc, _ in jobs)
    packed = packing.supported(model, longest=longest)
    tokens = budget.tokens(model, "packed" if packed else "padded", length=longest)
    groups = {}
    for j, (enc, _) in enumerate(jobs):
        groups.setdefault(enc.metric, []).append(j)
    plan = []
    for members in groups.values():
        pooled = Encoded.concat([jobs[j][0] for j in members])
        owner = torch.cat([torch.full((jobs[j][0].n,), j) for j in members])
        local = torch.cat([torch.arange(jobs[j][0].n) for j in members])
        batches, width = (
            packed_batches(pooled, batch_size, tokens) if packed else (pooled_batches(pooled, batch_size, tokens), 0)
        )
        plan += [(pooled.subset(idx), owner[idx], local[idx], width) for idx in batches]
    ablations = sorted({abl for _, abl in jobs})
    step = packed_step if packed else padded_step
    grads_were = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for sub, owner, local, width in each(plan, f"attribution/{'+'.join(ablations)}", progress):
            owners = owner.unique().tolist()
            kinds = {j: jobs[j][1] for j in owners}
            metric, per_head = step(model, sub, owner, kinds, means, width)
            for j in owners:
                rows = (owner == j).numpy()
                outs[j][0][local[rows].numpy()] = per_head[rows]
                outs[j][1][local[rows].numpy()] = metric[rows]
    finally:
        for p, g in zip(model.parameters(), grads_were):
            p.requires_grad_(g)
    return outs


def padded_step(model, sub: Encoded, owner, kinds: dict, means, width=0):
    """One right-padded batch: metric (b,) and Σ_pos,d (z − z_ablated) · ∂metric/∂z (b, L, H), numpy."""
    L = len(model.blocks)
    T = int(sub.lengths.max())
    owner = owner.to(device_of(model))
    cf_z = z_of(model, sub.cf_tokens[:, :T]) if "resample" in kinds.values() else None
    zs: list[torch.Tensor] = [None] * L
    with torch.enable_grad():
        resid = final_resid(model, sub.tokens[:, :T], keep_z(zs, grad=True))
        metric = metric_at(model, at_positions(resid, sub.read_pos), sub)
        grads = torch.autograd.grad(metric.sum(), zs)
    per_head = []
    for layer, (z, grad) in enumerate(zip(zs, grads)):
        delta = z.detach().clone()  # zero ablation: z − 0
        for j, kind in kinds.items():
            rows = owner == j
            if kind == "resample":
                delta[rows] -= cf_z[layer][rows.to(cf_z[layer].device)].to(delta.device)
            elif kind == "mean":  # positions past the task's rows: grad 0, any value
                mean = means[j][layer][:T]
                delta[rows, : len(mean)] -= mean
        per_head.append((delta.float() * grad.float()).sum((1, 3)))  # (b, H): Σ over positions and d_head
    return metric.detach().cpu().numpy(), torch.stack(per_head, 1).cpu().numpy()


def packed_step(model, sub: Encoded, owner, kinds: dict, means, width: int):
    """``padded_step`` on a packed batch (see ``engine.packing``): items share rows without padding.

    A resampled item's z − z_cf is exactly 0 before its first differing token (its counterfactual shares that
    prefix), so only its positions from there on (its *split*) need gradients: the prefixes run once without
    grad, laid out as a trie (``packing.Trie``: a prefix that items share is computed once), and each item's
    clean suffix (with grad) and counterfactual suffix attend to its prefix's keys/values. Other items run
    whole, with grad. Rows are ``width`` tokens wide."""
    L, n = len(model.blocks), sub.n
    resampled = torch.zeros(n, dtype=torch.bool)
    for j, kind in kinds.items():
        resampled |= (owner == j) & (kind == "resample")
    first = torch.minimum(sub.first_differences(), sub.lengths)
    split = torch.where(resampled, torch.minimum(first, sub.read_pos[:, 0]), 0)  # read positions take grad
    T = int(sub.lengths.max())
    pos = torch.arange(T)[None].expand(n, T)
    with_prefix = torch.nonzero(split > 0).flatten()
    prefix, rotary = {}, None
    if len(with_prefix):  # the prefixes, each distinct token path once (items share them)
        trie = Trie([sub.tokens[i, : int(split[i])] for i in with_prefix.tolist()], width)
        with torch.no_grad():
            prefix_run = Run(model, trie, trie.tokens)
        rotary = prefix_run.rotary
        prefix = {int(i): trie.path[k] for k, i in enumerate(with_prefix.tolist())}

    def run(pieces, tokens, fwd_hooks):
        """A packed run of items ``pieces`` from their split on, on their prefixes' keys/values."""
        pack = Pack(split[pieces], sub.lengths[pieces], width)
        kv = {}
        if prefix:
            slot, kv["prefix_owner"] = pack.prefix_slots(
                [prefix.get(i, torch.zeros(0, dtype=torch.long)) for i in pieces.tolist()]
            )
            kv["prefix"] = prefix_run.gather_kv(slot)
        return pack, Run(model, pack, pack.place(tokens[pieces]), fwd_hooks, rotary=rotary, **kv)

    zs: list[torch.Tensor] = [None] * L
    with torch.enable_grad():
        pack, clean = run(torch.arange(n), sub.tokens, keep_z(zs, grad=True))
        rotary = clean.rotary
        x = clean.resid.flatten(0, 1)[pack.slots(sub.read_pos).to(clean.resid.device)]  # (n, P, d)
        metric = metric_at(model, x, sub)
        grads = torch.autograd.grad(metric.sum(), zs)
    live = (pos < sub.lengths[:, None]) & (pos >= split[:, None])  # positions with grad
    slots = pack.slots(pos)  # (n, T)
    same = slots[live & resampled[:, None] & (pos < first[:, None])]
    cf_z, cf_clean, cf_slots = None, None, None
    pieces = torch.nonzero(resampled & (first < sub.lengths)).flatten()
    if len(pieces):
        cf_z = [None] * L
        with torch.no_grad():
            cf_pack, _ = run(pieces, sub.cf_tokens, keep_z(cf_z))
        cf_clean = slots[pieces][live[pieces]]
        cf_slots = cf_pack.slots(pos[pieces])[live[pieces]]
    mean_items = [(j, live & (owner == j)[:, None]) for j, kind in kinds.items() if kind == "mean"]
    item = torch.where(pack.owner >= 0, pack.owner, n).flatten()  # empty slots → row n
    per_head = torch.zeros((n + 1, L, model.cfg.n_heads), device=zs[0].device)
    for layer, (z, grad) in enumerate(zip(zs, grads)):
        on = lambda t: t.to(z.device)  # noqa: E731  (index tensors are made on the CPU)
        delta = z.detach().flatten(0, 1).clone()  # (R·W, H, d): z − 0
        delta[on(same)] = 0.0
        if cf_z is not None:
            delta[on(cf_clean)] -= cf_z[layer].flatten(0, 1)[on(cf_slots)].to(z.device)
        for j, where in mean_items:
            delta[on(slots[where])] -= means[j][layer][on(pos[where])]
        contribution = (delta.float() * grad.flatten(0, 1).float()).sum(-1)
        per_head[:, layer].index_add_(0, on(item), contribution.to(per_head.device))
    return metric.detach().cpu().numpy(), per_head[:n].cpu().numpy()
