"""Exact ablation: ``score(method="ablation")``.

For each head (l, h), replace its ``hook_z`` at every position and measure the metric drop,
clean − ablated, per item. ``ablation`` picks the replacement: "zero" (0), "mean" (the task's mean z at
each position over the items that reach it; with equal-length prompts the exact per-position mean) or
"resample" (z from the counterfactual prompt's run).

Fast path (``engine.replay``): an ablation at layer l cannot change blocks < l, so each batch runs clean
once, keeping every block's input, and only blocks ≥ l re-run — for several heads at once, as stacked
copies of the batch, and the copies for the heads of the next layers join that re-run at their own layer
(``layer_groups``: a pass grows to ``JOIN_TOKENS`` tokens; on a CPU a small pass is mostly fixed cost per
block). Resampled items whose counterfactuals share their first d tokens re-run only
positions ≥ d on the clean keys/values, the metric reads only the read positions, and a batch runs only as
wide as its longest row (``Encoded.trimmed``). Proven equal to
TransformerLens' own patching (``headlab.testing.reference.transformerlens_patching``) in the tests.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import cache
from ..engine import hooks, nnsight_engine
from ..engine.forward import z_of
from ..engine.ndif import Requests
from ..engine.nnsight_engine import ENGINES
from ..engine.progress import bar as progress_bar
from ..engine.replay import Replay, rows_supported
from ..metrics import Encoded, metric_at
from .base import ABLATION_VARIANTS, Scorer, TaskResult, TaskSize, register
from .batching import item_batches, mean_z, prefix_batches, seqs_per_pass

__all__ = [
    "Ablation",
    "JOIN_TOKENS",
    "MIN_SUFFIX",
    "ablate",
    "ablate_heads_hook",
    "batch_replays",
    "batch_rows",
    "joined_pass",
    "layer_groups",
    "rerun_tokens",
    "shared_run",
    "sources",
    "sweep_cost",
    "traced_ablation",
]

JOIN_TOKENS = 2048  # tokens a joined pass grows to (measured on the CPU: docs/history/measured-2026.md)
# Positions a re-run keeps at least: a batch's runs leave out the padding past its longest row, but a re-run of
# 1-3 positions (resample's suffix) takes other CPU kernels, whose sums round differently from the clean run's
# (measured on the conformance models: a head with zeroed output weights then scored up to 1.4e-6, not exactly 0).
MIN_SUFFIX = 4


@register
class Ablation(Scorer):
    name = "ablation"
    summary = "exact: each head's z replaced, the metric drop measured (one re-run per head)"
    order = 20
    variants = ABLATION_VARIANTS

    def cost(self, size, n_layers, n_heads, options):
        return sweep_cost(size, n_layers, n_heads * n_layers)

    engines = ENGINES

    def run(self, model, jobs, options, batch_size, progress):
        if getattr(model, "engine", "bridge") != "bridge":
            return [traced_ablation(model, job, progress) for job in jobs]
        return [ablate(model, job.enc, job.ablation, batch_size, progress, job.partial) for job in jobs]


def traced_ablation(model, job, progress: bool, heads=None) -> TaskResult:
    """Exact ablation of one job on the nnsight engine (``nnsight_engine.ablation``), every finished request
    saved to ``job.partial`` with the ids of NDIF jobs not yet fetched, and resumed from it. ``heads``: an (L, H)
    bool mask of the heads to ablate (default all); the others stay NaN."""
    L, H, n = model.cfg.n_layers, model.cfg.n_heads, job.enc.n
    per_ex = np.full((n, L, H), np.nan, dtype=np.float32)
    clean = np.full(n, np.nan, dtype=np.float32)
    done = np.zeros((L, H), dtype=bool)
    heads = np.ones((L, H), dtype=bool) if heads is None else np.asarray(heads, dtype=bool)
    saved = cache.load_partial(job.partial, per_ex.shape, heads, per_head=True) if job.partial else None
    if saved is not None:
        per_ex, clean, done = saved

    def keep(jobs: dict) -> None:
        if job.partial is not None:
            cache.save_partial(job.partial, per_ex, clean, done, heads, jobs=jobs)

    bar = progress_bar(int(heads.sum()), f"{job.task.name} · exact ({model.engine})", progress)
    bar.update(int((done & heads).sum()))
    requests = Requests(model, cache.partial_jobs(job.partial), keep, bar)
    try:
        swept_requests = nnsight_engine.ablation(model, job.enc, job.ablation, requests, bar, done=done, chosen=heads)
        for swept, drops, metric in swept_requests:
            for j, (layer, head) in enumerate(swept):
                per_ex[:, layer, head] = drops[:, j]
                done[layer, head] = True
            clean[:] = metric
            requests.save()
    finally:
        bar.close()
    return TaskResult(per_ex, clean)


def sweep_cost(size: TaskSize, n_layers: int, n_ablated: float) -> float:
    """Block-token passes of an exact sweep over ``n_ablated`` heads spread over the layers: the clean run and
    the source run (2L blocks of ``n_tokens``), then per head a re-run of ``rerun_tokens`` from its layer to the
    top ((L + 1) / 2 blocks on average; all H · L heads: H · L(L+1)/2)."""
    return size.n_items * (2 * n_layers * size.n_tokens + n_ablated * (n_layers + 1) / 2 * size.rerun_tokens)


def rerun_tokens(model, enc: Encoded, ablation: str, batch_size=None) -> float:
    """Mean positions per item that ``ablate``'s re-runs compute: each batch as wide as its longest row, less
    the prefix a resample re-run reuses (where the model's cache allows it, which this does not check)."""
    total = 0
    for idx in (prefix_batches if ablation == "resample" else item_batches)(model, enc, batch_size):
        sub, reuse = batch_rows(enc, idx, ablation)
        total += len(idx) * (sub.tokens.shape[1] - reuse)
    return total / enc.n


def batch_rows(enc: Encoded, idx: torch.Tensor, ablation: str) -> tuple[Encoded, int]:
    """A batch's rows as its runs see them, trimmed to its longest row (keeping ``MIN_SUFFIX`` re-run
    positions), and the prefix its resample re-runs may reuse (``shared_prefix``; 0 for other ablations)."""
    sub = enc.subset(idx)
    reuse = shared_prefix(sub) if ablation == "resample" else 0
    return sub.trimmed(at_least=reuse + MIN_SUFFIX), reuse


def sources(model, enc: Encoded, ablation: str, batches):
    """A function (batch index tensor, layer, replay, prefix) → replacement z at the positions a re-run computes,
    ≥ prefix (b, T − prefix, H, d_head), or None for zero."""
    if ablation == "zero":
        return lambda idx, layer, replay, prefix: None
    if ablation == "mean":
        mean = mean_z(model, enc, batches)
        return lambda idx, layer, replay, prefix: mean[layer][prefix : replay.T].expand(len(idx), -1, -1, -1)
    return lambda idx, layer, replay, prefix: replay.cf_z[layer][:, prefix:]


def ablate(model, enc: Encoded, ablation: str, batch_size, progress: bool, partial=None, heads=None) -> TaskResult:
    """Exact per-head ablation of one encoded task: per_example (n, L, H) metric drops, clean metric (n,).
    With ``partial`` (a path), every finished run of layers is saved there and a rerun resumes from it (a
    partial of other ``heads`` is not resumed: it is overwritten).
    ``heads``: an (L, H) bool mask of the heads to ablate (default all); the others stay NaN."""
    L, H = len(model.blocks), model.cfg.n_heads
    batches = (prefix_batches if ablation == "resample" else item_batches)(model, enc, batch_size)
    per_pass = seqs_per_pass(model, enc, batch_size)
    per_ex = np.full((enc.n, L, H), np.nan, dtype=np.float32)
    clean = np.full(enc.n, np.nan, dtype=np.float32)
    chosen = np.ones((L, H), dtype=bool) if heads is None else np.asarray(heads, dtype=bool)
    done = ~chosen.any(1)
    saved = cache.load_partial(partial, per_ex.shape, chosen) if partial is not None else None
    if saved is not None:
        per_ex, clean, done = saved
    if done.all():
        return TaskResult(per_ex, clean)
    source = sources(model, enc, ablation, batches)
    replays = batch_replays(model, enc, ablation, batches, per_pass)
    for idx, sub, r, _ in replays:
        with torch.no_grad():
            clean[idx.numpy()] = metric_at(model, r.clean_read, sub).cpu().numpy()
    widest = max(len(idx) * (sub.tokens.shape[1] - prefix) for idx, sub, _, prefix in replays)
    cap = max(1, per_pass // max(len(idx) for idx in batches))  # copies per pass
    groups = layer_groups(chosen, done, widest, cap, joined=not replays[0][2].full)
    steps = sum(-(-sum(int(chosen[layer].sum()) for layer in group) // cap) for group in groups) * len(batches)
    bar = progress_bar(steps, f"{enc.task} · ablation/{ablation}", progress)
    with torch.no_grad():
        for group in groups:
            pairs = [(layer, head) for layer in group for head in np.flatnonzero(chosen[layer]).tolist()]
            for idx, sub, r, prefix in replays:
                for p0 in range(0, len(pairs), cap):
                    run = pairs[p0 : p0 + cap]
                    ablated = joined_pass(r, run, source, idx, prefix)
                    ablated = metric_at(model, ablated, sub).view(len(run), len(idx)).cpu()
                    drop = (torch.as_tensor(clean[idx.numpy()])[None] - ablated).T.numpy()  # (n, copies)
                    for j, (layer, head) in enumerate(run):
                        per_ex[idx.numpy(), layer, head] = drop[:, j]
                    bar.update(1)
            done[group] = True
            if partial is not None:
                cache.save_partial(partial, per_ex, clean, done, chosen)
    bar.close()
    return TaskResult(per_ex, clean)


def batch_replays(model, enc: Encoded, ablation: str, batches, per_pass: int) -> list[tuple]:
    """Per batch (idx, its rows ``sub``, its clean ``Replay`` with ``cf_z`` (resample's source z, else None), the
    prefix its re-runs reuse): cut from one ``shared_run`` where resample allows it, else each batch run itself."""
    whole = shared_run(model, enc, ablation, batches, per_pass)
    out = []
    for idx in batches:
        sub, reuse = batch_rows(enc, idx, ablation)
        if whole is not None:
            r = whole.rows(idx, sub.tokens.shape[1])
            r.cf_z = [z[idx.to(z.device), : r.T] for z in whole.cf_z]
        else:
            r = Replay(model, sub.tokens, sub.read_pos, keep_z=False)
            r.cf_z = z_of(model, sub.cf_tokens) if ablation == "resample" else None
        out.append((idx, sub, r, reuse if r.supports_prefix() else 0))
    return out


def shared_run(model, enc: Encoded, ablation: str, batches, per_pass: int) -> Replay | None:
    """Resample's one clean and one counterfactual run of every item, which its prefix batches share
    (``Replay.rows``): a batch's own two runs are mostly the fixed cost per block (measured:
    docs/history/measured-2026.md). None where each batch runs itself: other ablations (one batch of items),
    more items than half a pass holds (the shared run and the batches cut from it are kept together while they
    are cut), or block arguments that ``rows_supported`` could not prove."""
    if ablation != "resample" or len(batches) < 2 or 2 * enc.n > per_pass or not rows_supported(model):
        return None
    whole = Replay(model, enc.tokens, enc.read_pos, keep_z=False)
    whole.cf_z = z_of(model, enc.cf_tokens)
    return whole


def layer_groups(chosen: np.ndarray, done: np.ndarray, tokens_per_copy: int, cap: int, joined: bool) -> list[list[int]]:
    """The layers still to sweep, cut into runs of consecutive layers that share their re-runs (joined passes,
    see ``Replay.read_from(joins=...)``): a run grows while its copies hold at most ``JOIN_TOKENS`` tokens and
    ``cap`` copies; one layer per run where blocks cannot be re-run by hand. A finished run is saved as a unit."""
    groups, copies = [], 0
    for layer in np.flatnonzero(~done).tolist():
        n = int(chosen[layer].sum())
        if groups and joined and copies + n <= cap and (copies + n) * tokens_per_copy <= JOIN_TOKENS:
            groups[-1].append(layer)
            copies += n
        else:
            groups.append([layer])
            copies = n
    return groups


def joined_pass(r: Replay, run: list[tuple[int, int]], source, idx, prefix: int) -> torch.Tensor:
    """One re-run of ``r``'s batch for the (layer, head) ablations ``run`` (in layer order): copy j has head
    run[j] replaced and joins the pass at its layer; final residual stream at the read positions
    (len(run)·n, P, d_model)."""
    per_layer: dict[int, list[int]] = {}
    for layer, head in run:
        per_layer.setdefault(layer, []).append(head)
    fwd, first = [], 0
    for layer, heads in per_layer.items():
        src = source(idx, layer, r, prefix)
        fwd.append((hooks.z(layer), ablate_heads_hook(heads, len(idx), src, first)))
        first += len(heads)
    start = run[0][0]
    joins = {layer: len(heads) for layer, heads in per_layer.items()}
    return r.read_from(start, copies=joins[start], fwd_hooks=fwd, prefix=prefix, joins=joins)


def shared_prefix(enc: Encoded) -> int:
    """Leading positions where every clean and counterfactual row agree: resample cannot change them.

    Capped so that every read position stays in the re-run suffix."""
    return min(int(enc.first_differences().min()), int(enc.read_pos.min()))


def ablate_heads_hook(heads: list[int], n: int, src: torch.Tensor | None, first: int = 0):
    """Hook on z of stacked copies of an n-item batch: copy first + j gets head heads[j] replaced."""

    def hook(z, hook):
        view = z.view(-1, n, *z.shape[1:])
        for j, h in enumerate(heads):
            view[first + j, :, :, h] = 0.0 if src is None else src[:, :, h]
        return z

    return hook
