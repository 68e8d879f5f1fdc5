"""``score()``: every head of every layer gets a number per task.

method="ablation" (exact): for each head, replace its ``hook_z`` at every position and measure the metric
  drop. ``ablation`` picks the replacement: "zero" (0), "mean" (the task's mean z at each position over
  the items that reach it; with equal-length prompts the exact per-position mean) or "resample" (z from the
  counterfactual prompt's run). Fast path: ``Replay`` runs only blocks ≥ l, ablates several heads per
  batch and computes logits only at read positions.
method="attribution": one forward + backward (plus one counterfactual forward for resample) scores all
  heads at once: Σ_pos,d (z_clean − z_ablated) · ∂metric/∂z — the first-order estimate of the same drop.
  Fast path: ``packing`` puts the items end to end in shared rows, and runs a counterfactual only from its
  first differing token on.

Results are cached on disk per task (key: model fingerprint, task content, method, params), written
atomically; an exact sweep saves each finished layer and resumes from there after an interruption.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import hooks, packing
from .metrics import METRICS, Encoded, encode, from_logits, metric_at
from .packing import Pack, Run, Trie
from .models import describe, load_model
from .replay import Replay, at_positions, final_resid
from .results import HeadScores, atomic_write_bytes
from .tasks import Task, as_task_list

METHODS = ("ablation", "attribution", "probe", "gating")
ABLATIONS = ("zero", "mean", "resample")
TOKEN_BUDGET = 16384  # tokens per forward pass; keeps the embedded model's sweep well under 6 GB
PACKED_TOKEN_BUDGET = 2048  # tokens per packed forward + backward (attribution; fewer, fuller passes: measured)
PADDED_TOKEN_BUDGET = 512  # per right-padded forward + backward: larger padded batches were slower (measured)
CACHE_VERSION = 1


def score(model=None, tasks=None, method: str = "attribution", ablation: str = "resample",
          metric: str = "logit_diff", batch_size: int | None = None, cache=True, progress: bool = True,
          **options) -> HeadScores:
    """Score every head for every task. ``tasks``: a Task, a list, or ``builtin()`` (default: all eight).

    ``batch_size``: sequences per forward pass (default: as many as fit ``TOKEN_BUDGET`` tokens); packed
    attribution: rows per pass (default: ``PACKED_TOKEN_BUDGET`` tokens).
    ``cache``: True (``$HEADLAB_CACHE/scores``), False, or a folder.
    ``options``: method-specific settings — "probe": see ``headlab.probing.probe_scores``; "gating": see
    ``headlab.gating.gate_scores``. They are part of the cache key and of ``params``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose from {METHODS}")
    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}: choose from {ABLATIONS}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose from {METRICS}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    from transformer_lens.model_bridge import TransformerBridge

    if options and method not in ("probe", "gating"):
        raise ValueError(f"method {method!r} takes no options, got {sorted(options)}")
    model = model if isinstance(model, TransformerBridge) else load_model(model)
    if tasks is None:
        from .tasks import builtin

        tasks = builtin()
    task_list = as_task_list(tasks)
    info = describe(model)
    folder = _cache_folder(cache)
    if method == "probe":
        from .probing import probe_scores

        return probe_scores(model, task_list, batch_size=batch_size, cache=folder, progress=progress, **options)
    if method == "gating":
        from .gating import check_options

        options = check_options(**options)

    results, notes, per_task, pending = [], [], {}, []
    if method == "gating":  # gates are fitted on the answer's next-token loss: no ablation, no metric
        ablation = metric = None
    for task in task_list:
        t_ablation, t_metric = ablation, metric
        if method != "gating" and not task.has_counterfactuals:
            if t_metric == "logit_diff":
                t_metric = "logprob"
                notes.append(f"{task.name}: no counterfactuals, metric logit_diff → logprob")
            if t_ablation == "resample":
                t_ablation = "mean"
                notes.append(f"{task.name}: no counterfactuals, resample → mean ablation")
        per_task[task.name] = {"ablation": t_ablation, "metric": t_metric}
        key = _cache_key(model, info, task, method, t_ablation, t_metric, options)
        path = folder / f"{key}.npz" if folder else None
        if path is not None and path.is_file():
            results.append(_load_task(path))
            continue
        if method == "gating":
            from .gating import gate_scores

            out = gate_scores(model, task, batch_size=batch_size, progress=progress, **options)
            if path is not None:
                _save_task(path, *out)
            results.append(out)
            continue
        enc = encode(task, model.tokenizer, t_metric)
        if t_ablation == "resample":
            keep = torch.nonzero(enc.cf_ok).flatten()
            if len(keep) == 0:
                raise ValueError(f"task {task.name!r}: no counterfactual has its prompt's token length; "
                                 "use ablation='mean' or fix the counterfactuals")
            enc = enc.subset(keep)
        if method == "attribution":          # computed below, all tasks' items pooled
            pending.append((len(results), enc, t_ablation, path))
            results.append(None)
            continue
        partial = folder / f"{key}.partial.npz" if folder else None
        out = _ablation(model, enc, t_ablation, batch_size, progress, partial)
        if path is not None:
            _save_task(path, *out)
            if partial is not None and partial.exists():
                partial.unlink()
        results.append(out)
    if pending:
        outs = _attribution(model, [(enc, abl) for _, enc, abl, _ in pending], batch_size, progress)
        for (slot, _, _, path), out in zip(pending, outs):
            if path is not None:
                _save_task(path, *out)
            results[slot] = out
    for note in notes:
        warnings.warn(note, stacklevel=2)

    n_max = max(r[0].shape[0] for r in results)
    per_example = np.full((len(results), n_max, info.n_layers, info.n_heads), np.nan, dtype=np.float32)
    for t, (pe, _) in enumerate(results):
        per_example[t, : pe.shape[0]] = pe
    params = {"ablation": ablation, "metric": metric, "per_task": per_task, **options}
    return HeadScores(
        values=np.stack([pe.astype(np.float64).mean(0) for pe, _ in results]),
        tasks=[t.name for t in task_list], model=info, method=method, params=params,
        n_examples=[pe.shape[0] for pe, _ in results], baseline=[b.mean() for _, b in results],
        per_example=per_example, notes=notes,
    )


def transformerlens_patching(model, task: Task, metric: str = "logit_diff", index_df=None):
    """The reference: TransformerLens' own head patching with the counterfactual's z patched into the clean
    run, as clean metric − patched metric. Returns (n_layers, n_heads), or one value per ``index_df`` row
    (columns layer, head) to patch only those heads. Slow (one full forward per head): for checking."""
    from transformer_lens import patching

    from .metrics import gather_positions

    enc = encode(task, model.tokenizer, metric)
    _, cf_cache = model.run_with_cache(enc.cf_tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    fn = lambda logits: from_logits(gather_positions(logits, enc.read_pos), enc).mean()  # noqa: E731
    with torch.no_grad():
        clean = fn(model(enc.tokens))
        if index_df is None:
            patched = patching.get_act_patch_attn_head_out_all_pos(model, enc.tokens, cf_cache, fn)
        else:
            patched = patching.generic_activation_patch(
                model, enc.tokens, cf_cache, fn, patch_setter=patching.layer_head_vector_patch_setter,
                activation_name="z", index_df=index_df)
    return (clean - patched).numpy()


# --- exact ablation --------------------------------------------------------------------------------

def _item_batches(enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    T = enc.tokens.shape[1]
    size = batch_size or max(1, TOKEN_BUDGET // T)
    return [torch.arange(s, min(s + size, enc.n)) for s in range(0, enc.n, size)]


def _prefix_batches(enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    """Item batches grouped by where each counterfactual first differs from its prompt, so that a batch
    shares a long unchanged prefix (see ``Replay.read_from(prefix=...)``)."""
    size = batch_size or max(1, TOKEN_BUDGET // enc.tokens.shape[1])
    first = _first_differences(enc)
    batches = []
    for d in torch.unique(first).tolist():
        idx = torch.nonzero(first == d).flatten()
        batches += [idx[s: s + size] for s in range(0, len(idx), size)]
    return batches


def _first_differences(enc: Encoded) -> torch.Tensor:
    """(n,) first position where each counterfactual row differs from its clean row (T if none)."""
    differs = enc.tokens != enc.cf_tokens
    return torch.where(differs.any(1), differs.float().argmax(1), torch.tensor(enc.tokens.shape[1]))


def _mean_z(model, enc: Encoded, batches) -> list[torch.Tensor]:
    """Per layer (T, H, d_head): mean z over the items whose sequence reaches each position."""
    sums, count = None, torch.zeros(enc.tokens.shape[1])
    for idx in batches:
        sub = enc.subset(idx)
        mask = (torch.arange(sub.tokens.shape[1])[None] < sub.lengths[:, None]).float()  # (b, T)
        layer_sums = [(z * mask[:, :, None, None]).sum(0) for z in _z_of(model, sub.tokens)]
        sums = layer_sums if sums is None else [a + b for a, b in zip(sums, layer_sums)]
        count += mask.sum(0)
    return [s / count.clamp(min=1)[:, None, None] for s in sums]


def _sources(model, enc: Encoded, ablation: str, batches):
    """A function (batch index tensor, layer) → replacement z (b, T, H, d_head), or None for zero."""
    if ablation == "zero":
        return lambda idx, layer, replay: None
    if ablation == "mean":
        mean = _mean_z(model, enc, batches)
        return lambda idx, layer, replay: mean[layer].expand(len(idx), -1, -1, -1)
    return lambda idx, layer, replay: replay.cf_z[layer]


def _ablation(model, enc: Encoded, ablation: str, batch_size, progress: bool, partial: Path | None):
    """Exact per-head ablation: per_example (n, L, H) metric drops and clean metric (n,)."""
    L, H = len(model.blocks), model.cfg.n_heads
    batches = _prefix_batches(enc, batch_size) if ablation == "resample" else _item_batches(enc, batch_size)
    T = enc.tokens.shape[1]
    seqs_per_pass = batch_size or max(1, TOKEN_BUDGET // T)
    per_ex = np.full((enc.n, L, H), np.nan, dtype=np.float32)
    clean = np.full(enc.n, np.nan, dtype=np.float32)
    done = np.zeros(L, dtype=bool)
    if partial is not None and partial.is_file():
        with np.load(partial) as f:
            per_ex, clean, done = f["per_example"], f["clean"], f["done"]
    if done.all():
        return per_ex, clean
    source = _sources(model, enc, ablation, batches)
    replays = []
    for idx in batches:
        sub = enc.subset(idx)
        r = Replay(model, sub.tokens, sub.read_pos, keep_z=False)
        r.cf_z = _z_of(model, sub.cf_tokens) if ablation == "resample" else None
        with torch.no_grad():
            clean[idx.numpy()] = metric_at(model, r.clean_read, sub).numpy()
        replays.append((idx, sub, r))
    steps = sum(int(not d) for d in done) * sum(
        -(-H // max(1, seqs_per_pass // len(idx))) for idx in batches)
    bar = tqdm(total=steps, desc=f"{enc.task} · ablation/{ablation}", disable=not progress, leave=False)
    with torch.no_grad():
        for layer in range(L):
            if done[layer]:
                continue
            for idx, sub, r in replays:
                src = source(idx, layer, r)
                prefix = _shared_prefix(sub) if ablation == "resample" and r.supports_prefix() else 0
                src = src[:, prefix:] if prefix else src
                copies = max(1, min(H, seqs_per_pass // len(idx)))
                for h0 in range(0, H, copies):
                    heads = list(range(h0, min(H, h0 + copies)))
                    hook = _ablate_heads_hook(heads, len(idx), src)
                    x = r.read_from(layer, copies=len(heads), fwd_hooks=[(hooks.z(layer), hook)], prefix=prefix)
                    ablated = metric_at(model, x, sub).view(len(heads), len(idx))
                    per_ex[idx.numpy()[:, None], layer, heads] = (
                        torch.as_tensor(clean[idx.numpy()])[None] - ablated).T.numpy()
                    bar.update(1)
            done[layer] = True
            if partial is not None:
                _save_partial(partial, per_ex, clean, done)
    bar.close()
    return per_ex, clean


def _shared_prefix(enc: Encoded) -> int:
    """Leading positions where every clean and counterfactual row agree: resample cannot change them.

    Capped so that every read position stays in the re-run suffix."""
    return min(int(_first_differences(enc).min()), int(enc.read_pos.min()))


def _ablate_heads_hook(heads: list[int], n: int, src: torch.Tensor | None):
    """Hook on z of ``len(heads)`` stacked copies of an n-item batch: copy j gets head heads[j] replaced."""
    def hook(z, hook):
        view = z.view(len(heads), n, *z.shape[1:])
        for j, h in enumerate(heads):
            view[j, :, :, h] = 0.0 if src is None else src[:, :, h]
        return z
    return hook


def _z_of(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (n, T, H, d_head): z of a plain no-grad run (stopped before the unembedding)."""
    zs = [None] * len(model.blocks)
    with torch.no_grad():
        final_resid(model, tokens, _keep_z(zs))
    return zs


def _keep_z(zs: list, grad: bool = False):
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


# --- attribution patching --------------------------------------------------------------------------

def _pooled_batches(enc: Encoded, batch_size: int | None) -> list[torch.Tensor]:
    """Row batches of a pooled encoding, shortest rows first: ``batch_size`` rows each, or (default) as
    many as keep rows × longest row ≤ ``PADDED_TOKEN_BUDGET``."""
    order = torch.argsort(enc.lengths, stable=True)
    if batch_size:
        return [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        longest = int(enc.lengths[order[end - 1]])
        if end - start > 1 and (end - start) * longest > PADDED_TOKEN_BUDGET:
            batches.append(order[start: end - 1])
            start = end - 1
    return batches + [order[start:]]


def _packed_batches(enc: Encoded, batch_size: int | None) -> tuple[list[torch.Tensor], int]:
    """Item batches of a pooled encoding for packed runs, and the row width: the items are packed into rows
    as wide as the longest item, and the rows cut into batches of ``batch_size`` rows, or (default) as many
    as keep rows × width ≤ ``PACKED_TOKEN_BUDGET``."""
    pack = Pack(torch.zeros_like(enc.lengths), enc.lengths)
    rows = batch_size or max(1, PACKED_TOKEN_BUDGET // pack.width)
    batches = [torch.nonzero((pack.row >= s) & (pack.row < s + rows)).flatten() for s in range(0, pack.n_rows, rows)]
    return batches, pack.width


def _attribution(model, jobs: list[tuple[Encoded, str]], batch_size, progress: bool):
    """First-order head scores for encoded tasks ``jobs`` [(enc, ablation)]: [(per_example (n, L, H), clean
    (n,))] per job.

    Every job's items (of one metric) are pooled and batched together, so that short tasks fill a pass
    together: packed end to end where the model allows it (``packing``), else sorted by length and
    right-padded. Per batch: one clean forward with ∂metric/∂z kept for every layer, one backward (activation
    gradients only: the weights are frozen meanwhile), and a no-grad counterfactual run for resampled items.
    """
    L, H = len(model.blocks), model.cfg.n_heads
    means = [_mean_z(model, enc, _item_batches(enc, batch_size)) if abl == "mean" else None for enc, abl in jobs]
    outs = [(np.zeros((enc.n, L, H), dtype=np.float32), np.zeros(enc.n, dtype=np.float32)) for enc, _ in jobs]
    packed = packing.supported(model)
    groups = {}
    for j, (enc, _) in enumerate(jobs):
        groups.setdefault(enc.metric, []).append(j)
    plan = []
    for members in groups.values():
        pooled = Encoded.concat([jobs[j][0] for j in members])
        owner = torch.cat([torch.full((jobs[j][0].n,), j) for j in members])
        local = torch.cat([torch.arange(jobs[j][0].n) for j in members])
        batches, width = _packed_batches(pooled, batch_size) if packed else (_pooled_batches(pooled, batch_size), 0)
        plan += [(pooled.subset(idx), owner[idx], local[idx], width) for idx in batches]
    ablations = sorted({abl for _, abl in jobs})
    step = _attribution_packed if packed else _attribution_padded
    grads_were = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for sub, owner, local, width in tqdm(plan, desc=f"attribution/{'+'.join(ablations)}", disable=not progress,
                                      leave=False):
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


def _attribution_padded(model, sub: Encoded, owner, kinds: dict, means, width=0):
    """One right-padded batch: metric (b,) and Σ_pos,d (z − z_ablated) · ∂metric/∂z (b, L, H), numpy."""
    L = len(model.blocks)
    T = int(sub.lengths.max())
    cf_z = _z_of(model, sub.cf_tokens[:, :T]) if "resample" in kinds.values() else None
    zs: list[torch.Tensor] = [None] * L
    with torch.enable_grad():
        resid = final_resid(model, sub.tokens[:, :T], _keep_z(zs, grad=True))
        metric = metric_at(model, at_positions(resid, sub.read_pos), sub)
        grads = torch.autograd.grad(metric.sum(), zs)
    per_head = []
    for layer, (z, grad) in enumerate(zip(zs, grads)):
        delta = z.detach().clone()                      # zero ablation: z − 0
        for j, kind in kinds.items():
            rows = owner == j
            if kind == "resample":
                delta[rows] -= cf_z[layer][rows]
            elif kind == "mean":   # positions past the task's rows: grad 0, any value
                mean = means[j][layer][:T]
                delta[rows, : len(mean)] -= mean
        per_head.append((delta * grad).sum((1, 3)))    # (b, H): Σ over positions and d_head
    return metric.detach().numpy(), torch.stack(per_head, 1).numpy()


def _attribution_packed(model, sub: Encoded, owner, kinds: dict, means, width: int):
    """``_attribution_padded`` on a packed batch (see ``packing``): items share rows without padding.

    A resampled item's z − z_cf is exactly 0 before its first differing token (its counterfactual shares that
    prefix), so only its positions from there on (its *split*) need gradients: the prefixes run once without
    grad, laid out as a trie (``packing.Trie``: a prefix that items share is computed once), and each item's
    clean suffix (with grad) and counterfactual suffix attend to its prefix's keys/values. Other items run
    whole, with grad. Rows are ``width`` tokens wide."""
    L, n = len(model.blocks), sub.n
    resampled = torch.zeros(n, dtype=torch.bool)
    for j, kind in kinds.items():
        resampled |= (owner == j) & (kind == "resample")
    first = torch.minimum(_first_differences(sub), sub.lengths)
    split = torch.where(resampled, torch.minimum(first, sub.read_pos[:, 0]), 0)   # read positions take grad
    T = int(sub.lengths.max())
    pos = torch.arange(T)[None].expand(n, T)
    with_prefix = torch.nonzero(split > 0).flatten()
    prefix, rotary = {}, None
    if len(with_prefix):                 # the prefixes, each distinct token path once (items share them)
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
                [prefix.get(i, torch.zeros(0, dtype=torch.long)) for i in pieces.tolist()])
            kv["prefix"] = prefix_run.gather_kv(slot)
        return pack, Run(model, pack, pack.place(tokens[pieces]), fwd_hooks, rotary=rotary, **kv)

    zs: list[torch.Tensor] = [None] * L
    with torch.enable_grad():
        pack, clean = run(torch.arange(n), sub.tokens, _keep_z(zs, grad=True))
        rotary = clean.rotary
        x = clean.resid.flatten(0, 1)[pack.slots(sub.read_pos)]                         # (n, P, d)
        metric = metric_at(model, x, sub)
        grads = torch.autograd.grad(metric.sum(), zs)
    live = (pos < sub.lengths[:, None]) & (pos >= split[:, None])                   # positions with grad
    slots = pack.slots(pos)                                                           # (n, T)
    same = slots[live & resampled[:, None] & (pos < first[:, None])]
    cf_z, cf_clean, cf_slots = None, None, None
    pieces = torch.nonzero(resampled & (first < sub.lengths)).flatten()
    if len(pieces):
        cf_z = [None] * L
        with torch.no_grad():
            cf_pack, _ = run(pieces, sub.cf_tokens, _keep_z(cf_z))
        cf_clean = slots[pieces][live[pieces]]
        cf_slots = cf_pack.slots(pos[pieces])[live[pieces]]
    mean_items = [(j, live & (owner == j)[:, None]) for j, kind in kinds.items() if kind == "mean"]
    item = torch.where(pack.owner >= 0, pack.owner, n).flatten()                   # empty slots → row n
    per_head = torch.zeros((n + 1, L, model.cfg.n_heads))
    for layer, (z, grad) in enumerate(zip(zs, grads)):
        delta = z.detach().flatten(0, 1).clone()                                    # (R·W, H, d): z − 0
        delta[same] = 0.0
        if cf_z is not None:
            delta[cf_clean] -= cf_z[layer].flatten(0, 1)[cf_slots]
        for j, where in mean_items:
            delta[slots[where]] -= means[j][layer][pos[where]]
        per_head[:, layer].index_add_(0, item, (delta * grad.flatten(0, 1)).sum(-1))
    return metric.detach().numpy(), per_head[:n].numpy()


# --- cache ----------------------------------------------------------------------------------------

def _cache_folder(cache) -> Path | None:
    if cache is False or cache is None:
        return None
    if cache is True:
        from .models import cache_dir

        return cache_dir() / "scores"
    return Path(cache)


def model_fingerprint(model) -> str:
    """A cheap content hash of the weights (first values of every parameter)."""
    fp = getattr(model, "_headlab_fingerprint", None)
    if fp is None:
        h = hashlib.sha256()
        for name, p in model.named_parameters():
            h.update(name.encode())
            h.update(p.detach().flatten()[:64].float().numpy().tobytes())
        fp = h.hexdigest()[:16]
        model._headlab_fingerprint = fp
    return fp


def _cache_key(model, info, task: Task, method, ablation, metric, options=None) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "model": info.to_dict(), "weights": model_fingerprint(model),
                       "task": task.content_hash(), "method": method, "ablation": ablation, "metric": metric,
                       **({"options": options} if options else {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _save_task(path: Path, per_example, clean) -> None:
    atomic_write_bytes(path, _npz_bytes(per_example=per_example, clean=clean))


def _load_task(path: Path):
    with np.load(path) as f:
        return f["per_example"], f["clean"]


def _save_partial(path: Path, per_example, clean, done) -> None:
    atomic_write_bytes(path, _npz_bytes(per_example=per_example, clean=clean, done=done))
