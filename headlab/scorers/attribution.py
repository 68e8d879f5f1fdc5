"""Attribution patching: ``score(method="attribution", steps=m)``.

One forward + backward (plus one counterfactual forward for resample) scores all heads at once:
Σ_pos,d (z_clean − z_ablated) · ∂metric/∂z, the first-order estimate of exact ablation's drop.

**Integrated gradients** (``steps=m`` > 1, EAP-IG's idea on heads): the slope at the clean run is wrong where
the metric bends between the clean and the ablated run (a head whose effect only appears once the
counterfactual's digit arrives). So the gradient is averaged over m points of the path from the ablated run to
the clean one: at α_k = k/m (k = 1 … m) every head's output is z̃ = z_ablated + α (z − z_ablated) at every
layer, in one run, z being what the run computes there; a head's score is
(1/m) Σ_k Σ_pos,d (z − z_ablated) · ∂metric/∂z̃ at α_k — the Riemann sum of ∫ ∂metric/∂g_h dα along the
diagonal of per-head gates g (g = 1 clean, 0 ablated). The last point is the clean run, so m = 1 is the
first-order estimate itself. The path interpolates *activations* (every layer's z) rather than the input
embeddings: it is defined for zero and mean ablation too, and it agreed better with exact ablation on the
embedded model (``docs/history/measured-2026.md``). Each point costs one more forward + backward; the gradient-free
prefixes and the counterfactual run are shared by all points. Several screens at once (``attribute_screens``,
screen-then-verify's m = 1 and m = 2) run each distinct point once: m = 2's points are α = ½ and 1.
``path="layers"`` moves one layer at a time instead, the others computing from the run (``scorers.layer_path``):
it agrees with exact ablation far better where layers act together, at a cost that grows with the layers, not
the points alone.

Every task's items (of one metric) are pooled and batched together, so that short tasks fill a pass
together: packed end to end where the model allows it (``engine.packing``), else sorted by length and
right-padded. Per batch: one clean forward with ∂metric/∂z kept for every layer, one backward (activation
gradients only: the weights are frozen meanwhile), and a no-grad counterfactual run for resampled items.
The packed path is proven equal to the padded one in the tests.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .. import cache
from ..engine import budget, nnsight_engine, packing
from ..engine.forward import at_positions, device_of, final_resid, frozen, interpolate_z, keep_z, z_of
from ..engine.ndif import Requests
from ..engine.nnsight_engine import ENGINES
from ..engine.packing import Pack, Run, Trie
from ..engine.progress import bar as progress_bar
from ..errors import InputError
from ..metrics import Encoded, metric_at
from .base import ABLATION_VARIANTS, Scorer, TaskResult, TaskSize, register
from .batching import item_batches, mean_z
from .layer_path import layer_path_cost, layer_points

__all__ = [
    "Attribution",
    "MAX_STEPS",
    "PACKED_TOKEN_BUDGET",
    "PADDED_TOKEN_BUDGET",
    "PATHS",
    "alphas",
    "attribute",
    "attribute_screens",
    "check_steps",
    "integrated",
    "packed_batches",
    "path_cost",
    "path_points",
    "pooled_batches",
    "traced_attribution",
]

PACKED_TOKEN_BUDGET = budget.CAPS["packed"]  # per packed forward + backward on a CPU (fewer, fuller: measured)
PADDED_TOKEN_BUDGET = budget.CAPS["padded"]  # per right-padded one on a CPU: larger were slower (measured)
# Integrated-gradient points at most: each is one more forward + backward. On the embedded model m = 1 is 13× and
# m = 16 7.4× cheaper than exact ablation (docs/history/measured-2026.md), so a point adds ≈ 0.4% of exact's
# time: by m ≈ 240 the estimate costs what exact ablation, the value it estimates, costs. The completeness test runs 64.
MAX_STEPS = 256


@register
class Attribution(Scorer):
    name = "attribution"
    summary = "first-order estimate of ablation: (z − z_ablated) · ∂metric/∂z, every head in one pass"
    order = 10
    variants = {  # integrated gradients: resample only (with zero ablation more points agree less, measured)
        **ABLATION_VARIANTS,
        "resample · IG m=4": {"ablation": "resample", "steps": 4},
        "resample · IG m=2 per layer": {"ablation": "resample", "steps": 2, "path": "layers"},
    }
    options = {"steps": 1, "path": "activations"}
    option_help = {
        "steps": "integrated-gradient points, 1 = plain attribution",
        "path": "activations (every layer's z at once) or layers (one layer at a time)",
    }
    pools = True
    engines = ENGINES  # nnsight and NDIF: path="activations" only

    def check(self, options):
        out = check_steps(self.name, options, self.options)
        if out["path"] not in PATHS:
            raise InputError(f"attribution option path={out['path']!r}: choose from {PATHS}")
        return out

    def cost(self, size, n_layers, n_heads, options):
        if options["path"] == "layers":
            return path_cost(size, n_layers, [1]) + layer_path_cost(size, n_layers, options["steps"])
        return path_cost(size, n_layers, [options["steps"]])

    def run(self, model, jobs, options, batch_size, progress):
        if getattr(model, "engine", "bridge") != "bridge":
            if options["path"] == "layers":
                raise InputError(
                    f"attribution option path='layers' runs on engine='bridge' only, and this model is on the "
                    f"{model.engine} engine: use path='activations' (the default) here"
                )
            return (TaskResult(pe[0], clean) for pe, clean in traced_attribution(model, jobs, [options["steps"]]))
        pairs = [(job.enc, job.ablation) for job in jobs]
        steps = options["steps"]
        if options["path"] == "activations":
            return [TaskResult(*out) for out in attribute(model, pairs, batch_size, progress, steps=steps)]
        out = []
        for (enc, ablation), (per_example, clean) in zip(pairs, attribute(model, pairs, batch_size, progress)):
            inner = layer_points(model, enc, ablation, steps, batch_size, progress)
            out.append(TaskResult((per_example + inner) / steps, clean))
        return out


def traced_attribution(model, jobs, screens: list[int]):
    """Attribution on the nnsight engine along ``screens``' paths (their ``steps``): one request per task
    (``nnsight_engine.attribution``), each task's (per screen (S, n, L, H), clean (n,)) handed over as it arrives;
    an NDIF job's id stays in ``job.partial`` until its task is cached."""
    for job in jobs:

        def keep(jobs: dict, path=job.partial) -> None:
            if path is not None:
                cache.save_partial(path, jobs=jobs)

        requests = Requests(model, cache.partial_jobs(job.partial), keep, forget=False)
        yield nnsight_engine.attribution(model, job.enc, job.ablation, requests, screens)


PATHS = ("activations", "layers")  # every layer's z moved at once (one pass per point), or one layer at a time


def path_cost(size: TaskSize, n_layers: int, screens: list[int]) -> float:
    """Block-token passes of attribution along ``screens``' paths: the clean and the source run, then per
    distinct point a forward and a backward (≈ 2 passes: frozen weights, activation gradients only). m = 1: 4 L
    per token."""
    return size.n_items * size.n_tokens * n_layers * (2 + 2 * len(path_points(screens)))


def check_steps(method: str, options: dict, defaults: dict) -> dict:
    """``options`` with ``defaults`` filled in; ``steps`` a whole number from 1 to ``MAX_STEPS`` (one-line
    ValueError)."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise InputError(f"unknown {method} option(s) {unknown}: choose from {sorted(defaults)}")
    out = {**defaults, **options}
    steps = out["steps"]
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise InputError(
            f"{method} option steps={steps!r}: give the number of integrated-gradient points, a whole number "
            "≥ 1 (1: plain attribution)"
        )
    if steps > MAX_STEPS:
        raise InputError(
            f"{method} option steps={steps!r}: at most {MAX_STEPS} integrated-gradient points (each is one more "
            "forward and backward pass; by about 240 the estimate costs what exact ablation costs on the embedded "
            f"model): use steps ≤ {MAX_STEPS}, or method='ablation' for the exact values"
        )
    out["steps"] = int(steps)
    return out


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


def attribute(model, jobs: list[tuple[Encoded, str]], batch_size, progress: bool, steps: int = 1):
    """Head scores for encoded tasks ``jobs`` [(enc, ablation)], integrated over ``steps`` points (1: first
    order): [(per_example (n, L, H), clean (n,))] per job."""
    return attribute_screens(model, jobs, batch_size, progress, [steps])[0]


def attribute_screens(model, jobs: list[tuple[Encoded, str]], batch_size, progress: bool, screens: list[int]):
    """``attribute`` for several ``steps`` at once, each path point run once (``path_points``: m = 1's point is
    m = 2's last): per screen, [(per_example (n, L, H), clean (n,))] per job — equal to separate calls."""
    L, H = len(model.blocks), model.cfg.n_heads
    means = [mean_z(model, enc, item_batches(model, enc, batch_size)) if abl == "mean" else None for enc, abl in jobs]
    outs = [
        [(np.zeros((enc.n, L, H), dtype=np.float32), np.zeros(enc.n, dtype=np.float32)) for enc, _ in jobs]
        for _ in screens
    ]
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
    points = len(path_points(screens))
    desc = f"attribution/{'+'.join(ablations)}" + (f" · {points} points" if points > 1 else "")
    bar = progress_bar(len(plan) * points, desc, progress)  # a step per batch and path point
    try:
        with frozen(model):
            for sub, owner, local, width in plan:
                owners = owner.unique().tolist()
                kinds = {j: jobs[j][1] for j in owners}
                metric, per_screen = step(model, sub, owner, kinds, means, width, screens, bar.update)
                for out, per_head in zip(outs, per_screen):
                    for j in owners:
                        rows = (owner == j).numpy()
                        out[j][0][local[rows].numpy()] = per_head[rows]
                        out[j][1][local[rows].numpy()] = metric[rows]
    finally:
        bar.close()
    return outs


def alphas(steps: int) -> list[float]:
    """The path points α_k = k / steps, k = 1 … steps: the last is the clean run."""
    return [k / steps for k in range(1, steps + 1)]


def path_points(screens: list[int]) -> list[float]:
    """The distinct points of several screens' paths, ascending (k / m is correctly rounded, so equal
    fractions are equal floats)."""
    return sorted({alpha for steps in screens for alpha in alphas(steps)})


def integrated(run, ablated: list[torch.Tensor], screens: list[int], advance=None):
    """The path integrals shared by both layouts. ``run(fwd_hooks)`` runs the model's gradient pass under the
    hooks and returns the per-item metric; ``ablated[l]`` is layer l's z_ablated in the run's layout.
    Returns the clean metric and, per screen (its ``steps`` m), per layer Σ_k (z − z_ablated) · ∂metric/∂z̃ / m
    over the last axis (the run's layout without d_head), in float32; a point shared by screens runs once.
    ``advance()`` is called after each point (the progress bar)."""
    L = len(ablated)
    totals, metric = [[None] * L for _ in screens], None
    for alpha in path_points(screens):
        zs, live = [None] * L, [None] * L
        with torch.enable_grad():
            hooks = keep_z(zs, grad=True) if alpha == 1 else interpolate_z(zs, live, ablated, alpha)
            out = run(hooks)
            grads = torch.autograd.grad(out.sum(), zs)
        if alpha == 1:
            metric, live = out.detach(), [z.detach() for z in zs]
        on_path = [total for steps, total in zip(screens, totals) if alpha in alphas(steps)]
        for layer, grad in enumerate(grads):
            term = ((live[layer] - ablated[layer]).float() * grad.float()).sum(-1)
            for total in on_path:
                total[layer] = term if total[layer] is None else total[layer] + term
        if advance is not None:
            advance()
    return metric, [[t / steps if steps > 1 else t for t in total] for steps, total in zip(screens, totals)]


def padded_step(model, sub: Encoded, owner, kinds: dict, means, width=0, screens=(1,), advance=None):
    """One right-padded batch: metric (b,) and, per screen, Σ_pos,d (z − z_ablated) · ∂metric/∂z (b, L, H),
    numpy, integrated over its ``steps`` path points."""
    L = len(model.blocks)
    T = int(sub.lengths.max())
    owner = owner.to(device_of(model))
    cf_z = z_of(model, sub.cf_tokens[:, :T]) if "resample" in kinds.values() else None
    ablated = []
    for layer in range(L):
        abl = z_zeros(model, layer, (sub.n, T))  # zero ablation
        for j, kind in kinds.items():
            rows = owner == j
            if kind == "resample":
                abl[rows.to(abl.device)] = cf_z[layer][rows.to(cf_z[layer].device)].to(abl.device)
            elif kind == "mean":  # positions past the task's rows: grad 0, any value
                mean = means[j][layer][:T]
                abl[rows.to(abl.device), : len(mean)] = mean.to(abl.device)
        ablated.append(abl)

    def run(fwd_hooks):
        resid = final_resid(model, sub.tokens[:, :T], fwd_hooks)
        return metric_at(model, at_positions(resid, sub.read_pos), sub)

    metric, per_screen = integrated(run, ablated, screens, advance)
    per_head = [torch.stack([t.sum(1) for t in per_layer], 1).cpu().numpy() for per_layer in per_screen]  # Σ positions
    return metric.cpu().numpy(), per_head


def z_zeros(model, layer: int, lead: tuple) -> torch.Tensor:
    """Zeros shaped like layer ``layer``'s z for leading dimensions ``lead``: (*lead, H, d_head), in the
    model's dtype, on the layer's device."""
    param = next(model.blocks[layer].parameters())
    return torch.zeros((*lead, model.cfg.n_heads, model.cfg.d_head), dtype=param.dtype, device=param.device)


def packed_step(model, sub: Encoded, owner, kinds: dict, means, width: int, screens=(1,), advance=None):
    """``padded_step`` on a packed batch (see ``engine.packing``): items share rows without padding.

    A resampled item's z − z_cf is exactly 0 before its first differing token (its counterfactual shares that
    prefix), on the whole path too, so only its positions from there on (its *split*) need gradients: the
    prefixes run once without grad, laid out as a trie (``packing.Trie``: a prefix that items share is
    computed once), and each item's clean suffix (with grad, once per path point) and counterfactual suffix
    attend to its prefix's keys/values. Other items run whole, with grad. Rows are ``width`` tokens wide."""
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

    pack = Pack(split, sub.lengths, width)  # the clean suffixes' layout (as ``run`` lays them out)
    live = (pos < sub.lengths[:, None]) & (pos >= split[:, None])  # positions with grad
    slots = pack.slots(pos)  # (n, T)
    ablated = [z_zeros(model, layer, (pack.n_rows * width,)) for layer in range(L)]  # z − 0: zero ablation
    pieces = torch.nonzero(resampled & (first < sub.lengths)).flatten()
    if len(pieces):
        cf_z = [None] * L
        with torch.no_grad():
            cf_pack, cf_run = run(pieces, sub.cf_tokens, keep_z(cf_z))
        rotary = cf_run.rotary
        cf_clean = slots[pieces][live[pieces]]
        cf_slots = cf_pack.slots(pos[pieces])[live[pieces]]
        for layer, abl in enumerate(ablated):
            abl[cf_clean.to(abl.device)] = cf_z[layer].flatten(0, 1)[cf_slots.to(abl.device)].to(abl.device)
    for j, kind in kinds.items():
        if kind == "mean":
            where = live & (owner == j)[:, None]
            for layer, abl in enumerate(ablated):
                abl[slots[where].to(abl.device)] = means[j][layer][pos[where].to(abl.device)]
    ablated = [abl.view(pack.n_rows, width, *abl.shape[1:]) for abl in ablated]

    def clean_run(fwd_hooks):
        _, out = run(torch.arange(n), sub.tokens, fwd_hooks)
        x = out.resid.flatten(0, 1)[pack.slots(sub.read_pos).to(out.resid.device)]  # (n, P, d)
        return metric_at(model, x, sub)

    metric, per_screen = integrated(clean_run, ablated, screens, advance)
    item = torch.where(pack.owner >= 0, pack.owner, n).flatten()  # empty slots → row n
    out = []
    for per_layer in per_screen:
        per_head = torch.zeros((n + 1, L, model.cfg.n_heads), device=per_layer[0].device)
        on = item.to(per_head.device)
        for layer, contribution in enumerate(per_layer):  # (R, W, H) → Σ per item
            per_head[:, layer].index_add_(0, on, contribution.flatten(0, 1).to(per_head.device))
        out.append(per_head[:n].cpu().numpy())
    return metric.cpu().numpy(), out
