"""Does a map's top set matter? Mask a task's top-k heads vs layer-matched random heads (Cognitive Mirrors'
Table 1, done right) and across tasks (Table 2), or along a whole curve of k (their Fig. 3).

Random sets exclude the top heads, match their layer distribution (a layer that runs out of other heads
borrows from the nearest layers) and are drawn ``n_random`` times; drops are reported as mean ± std.

**Faithfulness curves** (``faithfulness``): per task, the metric and greedy
accuracy with the top k heads of each map masked, for every k of ``ks``, against ``draws`` layer-matched random
sets of k (matched to the first map's top k, never one of its heads). A faithful map's curve falls well below
the random band. Every masked set of a task runs in a few stacked passes (``interventions.mask_head_sets``:
copy c of the batch masks set c), and each task's curves are kept in memory, so asking again for one task (the
explorer's top-k control) costs nothing.

On the nnsight engine the same sets run as nnsight traces (``nnsight_engine.masked``: copies of the task's items,
each with its set ablated, only per-item numbers brought back); mode="mean" takes its means from ``head_means``,
whose traces pool the heads where the model runs.
"""

from __future__ import annotations

import hashlib
import numbers
import zlib
from dataclasses import dataclass

import numpy as np

from ..cache import Memo, ids_fingerprint
from ..engine import budget, nnsight_engine
from ..engine.forward import check_logits
from ..engine.ndif import Requests
from ..engine.progress import bar as progress_bar
from ..engine.progress import each
from ..errors import InputError, InputTypeError
from ..metrics import check_length, encode, evaluate
from ..results import HeadScores, check_k, check_model, refuse_tasks_as_scores
from ..tasks import Task, as_task_list
from .interventions import check_heads, head_means, mask_head_sets, mask_heads
from .selection import select_heads

__all__ = [
    "CURVES",
    "Faithfulness",
    "KS",
    "Validation",
    "check_draws",
    "faithfulness",
    "layer_matched_random",
    "validate",
]

KS = (1, 2, 4, 8, 16, 32, 64)  # the default curve: Cognitive Mirrors' 16 / 32 / 64 and the small k below
# Random sets per k at most: each is a pass over the task. The band is mean ± std, and a std from n draws has a
# relative standard error of about 1/√(2n): 2.2% at 1,000 draws, so more adds passes, not precision.
MAX_DRAWS = 1000


def check_draws(name: str, draws) -> int:
    """``draws`` (or ``n_random``) as an int from 10 (a mean ± std) to ``MAX_DRAWS``; one line naming ``name``."""
    if isinstance(draws, bool) or not isinstance(draws, numbers.Integral) or draws < 10:
        raise InputError(f"{name}={draws!r}: draw at least 10 random sets per k for a mean ± std")
    if draws > MAX_DRAWS:
        raise InputError(
            f"{name}={draws!r}: at most {MAX_DRAWS} random sets per k (each is a pass over the task; the band's std "
            f"is within ~2% by {MAX_DRAWS}): use {name} ≤ {MAX_DRAWS}"
        )
    return int(draws)


def _behaviours(model, task: Task, sets: list, mode: str, means, advance=None) -> list[tuple[float, float]]:
    """(mean metric, greedy accuracy) with each head set of ``sets`` masked as ``mask_heads`` masks it (an empty
    set: the clean run): the metric is the logit difference when the task has counterfactuals, else the answer
    log-prob. ``advance(k)`` after k sets. On the nnsight engine all sets run in one call (``_masked_behaviour``)."""
    if _traced(model):
        metric, accuracy = _masked_behaviour(model, task, sets, mode, means)
        if advance is not None:
            advance(len(sets))
        return list(zip(metric.tolist(), accuracy.tolist()))
    out = []
    for heads in sets:
        with mask_heads(model, heads, mode, means=means):
            ev = evaluate(model, task)
        metric = ev.logit_diff if ev.logit_diff is not None else ev.logprob
        out.append((float(metric.mean()), float(ev.correct.float().mean())))
        if advance is not None:
            advance(1)
    return out


def layer_matched_random(top: list[tuple[int, int]], n_layers: int, n_heads: int, rng) -> list[tuple[int, int]]:
    """As many heads as ``top``, none of them in ``top``, with the same count per layer where the layer
    has room (else from the nearest layers). A one-line ValueError when the model has fewer other heads than
    ``top`` holds (the draw would be smaller than the set it is compared with)."""
    top = check_heads(top, n_layers, n_heads)
    if n_layers * n_heads - len(top) < len(top):
        raise InputError(
            f"{len(top)} top heads leave only {n_layers * n_heads - len(top)} other heads in this {n_layers} × "
            f"{n_heads} model: a random set of {len(top)} cannot be drawn; use at most "
            f"{max_random_k(n_layers, n_heads)}"
        )
    taken = set(top)
    out = []
    for layer in sorted({l for l, _ in top}):
        need = sum(1 for l, _ in top if l == layer)
        for dist in range(n_layers):
            for cand in sorted({layer - dist, layer + dist}):
                if need == 0 or not 0 <= cand < n_layers:
                    continue
                free = [(cand, h) for h in range(n_heads) if (cand, h) not in taken]
                pick = rng.permutation(len(free))[:need]
                for i in pick:
                    taken.add(free[i])
                    out.append(free[i])
                need -= len(pick)
            if need == 0:
                break
    return out


def max_random_k(n_layers: int, n_heads: int) -> int:
    """The largest k whose random sets can be drawn from the other heads: half the model's heads."""
    return (n_layers * n_heads) // 2


def _ratio(drop_top: float, drop_random: float) -> float:
    """drop_top / drop_random; inf when only the top heads lower the metric, NaN when neither does."""
    if drop_random > 0:
        return drop_top / drop_random
    return float("inf") if drop_top > 0 else float("nan")


@dataclass
class Validation:
    """``table``: one row per task (k, clean / top-masked / random-masked metric and accuracy, drops, ratio).
    ``cross``: (A × B) drop of task B's metric with task A's top heads masked (``None`` unless asked).
    ``heads``: each task's top heads."""

    table: object
    cross: object | None
    heads: dict

    def markdown(self, decimals: int = 2) -> str:
        f = f"{{:.{decimals}f}}"
        lines = [
            "| task | k | clean | drop: top-k | drop: random-k (mean ± std) | ratio "
            "| acc clean | acc top-k | acc random-k |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for task, r in self.table.iterrows():
            lines.append(
                f"| {task} | {int(r.k)} | {f.format(r.clean)} | {f.format(r.drop_top)} | "
                f"{f.format(r.drop_random)} ± {f.format(r.drop_random_std)} | {f.format(r.ratio)} | "
                f"{r.acc_clean:.0%} | {r.acc_top:.0%} | {r.acc_random:.0%} |"
            )
        return "\n".join(lines)


def validate(
    model,
    scores: HeadScores,
    tasks,
    k: int | None = None,
    n_random: int = 10,
    seed: int = 0,
    mode: str = "zero",
    by: str = "value",
    cross_task: bool = False,
    progress: bool = True,
    ks=None,
    cross_model: bool = False,
) -> Validation:
    """Mask each task's top-k heads of ``scores`` (k = the elbow count when None) vs ``n_random`` (≥ 10)
    layer-matched random sets; ``mode`` "zero" or "mean" as in ``mask_heads`` ("mean" uses the tasks' mean
    activations; "scale" is refused: it needs an ``eps``, and without one it is "zero" under another name).

    ``by``: rank heads by signed score ("value": heads that help, the default) or |score| ("abs").
    ratio = drop(top-k) / mean drop(random-k): how many times more the top heads matter.

    Always a ``Validation`` (one k's table); the curves along many k are ``faithfulness(model, maps, tasks,
    ks=...)``, and ``ks=`` here is refused in one line that says so.
    ``cross_model``: a map of another model (``results.check_model``) is refused unless True.
    """
    import pandas as pd

    refuse_tasks_as_scores("validate", scores)
    check_draws("n_random", n_random)
    if ks is not None:
        raise InputError(
            "validate() masks one k and returns a Validation: for the curves along many k call "
            "headlab.faithfulness(model, maps, tasks, ks=...)"
        )
    if not isinstance(scores, HeadScores):
        several = (
            " (several maps: headlab.faithfulness(model, maps, tasks, ks=...) draws their curves)"
            if isinstance(scores, dict)
            else ""
        )
        raise InputTypeError(f"validate() takes one HeadScores as scores=, not {type(scores).__name__}{several}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(mode, str) or mode not in ("zero", "mean"):
        why = (
            ", which needs an eps: use mask_heads(model, heads, mode='scale', eps=...) and evaluate"
            if mode == "scale"
            else ""
        )
        raise InputError(f"unknown mode {mode!r} for validate{why}: choose 'zero' or 'mean'")
    if not isinstance(cross_task, bool):
        raise InputError(f"cross_task must be True or False, got {cross_task!r}")
    task_list = as_task_list(tasks)
    missing = [t.name for t in task_list if t.name not in scores.tasks]
    if missing:
        raise InputError(f"tasks {missing} are not in the scores ({scores.tasks}): score them first")
    check_model("validate()", scores, model, cross_model)
    _, L, H = scores.shape
    usable = max_random_k(L, H)
    if k is not None:
        check_k("k", k, L * H)
    heads = {t.name: select_heads(scores, t.name, "elbow" if k is None else "top_k", k=k, by=by) for t in task_list}
    for name, top in heads.items():  # before any compute: every random set must be as large as its top set
        if len(top) > usable:
            how = f"k={k}" if k is not None else f"the elbow picks {len(top)} heads of {name!r}"
            raise InputError(
                f"{how}, but a {L} × {H} model leaves only {L * H - len(top)} other heads for each random set: "
                f"the largest usable k is {usable}"
            )
    means = head_means(model, task_list, progress=progress) if mode == "mean" else None
    rng = np.random.default_rng(seed)
    bar = progress_bar(len(task_list) * (2 + n_random), "validate", progress)  # per task: clean, top-k, random
    try:
        clean, rows, rands = {}, [], {}
        for task in task_list:
            top = heads[task.name]
            sets = [[], top] + [layer_matched_random(top, L, H, rng) for _ in range(n_random)]
            got = _behaviours(model, task, sets, mode, means, bar.update)
            clean[task.name], rands[task.name] = got[0], (got[1], np.array(got[2:]))
    finally:
        bar.close()
    for task in task_list:
        top = heads[task.name]
        (m_top, a_top), rand = rands[task.name]
        m0, a0 = clean[task.name]
        drop_top, drops = m0 - m_top, m0 - rand[:, 0]
        rows.append(
            {
                "task": task.name,
                "k": len(top),
                "clean": m0,
                "top_masked": m_top,
                "drop_top": drop_top,
                "drop_random": drops.mean(),
                "drop_random_std": drops.std(ddof=1),
                "ratio": _ratio(drop_top, drops.mean()),
                "acc_clean": a0,
                "acc_top": a_top,
                "acc_random": rand[:, 1].mean(),
                "acc_random_std": rand[:, 1].std(ddof=1),
            }
        )
    cross = None
    if cross_task:
        names = [t.name for t in task_list]
        cross = pd.DataFrame(0.0, index=pd.Index(names, name="masked"), columns=pd.Index(names, name="measured"))
        for b in each(task_list, "cross-task", progress):
            got = _behaviours(model, b, [heads[a.name] for a in task_list], mode, means)
            for a, (metric, _) in zip(task_list, got):
                cross.loc[a.name, b.name] = clean[b.name][0] - metric
    return Validation(pd.DataFrame(rows).set_index("task"), cross, heads)


@dataclass(repr=False)
class Faithfulness:
    """Faithfulness curves. ``labels`` (M,) maps, ``tasks`` (T,), ``ks`` (K,);
    ``clean`` / ``clean_accuracy`` (T,): unmasked metric and greedy accuracy;
    ``metric`` / ``accuracy`` (M, T, K): with map m's top k heads of task t masked;
    ``random_metric`` / ``random_accuracy`` (T, K, draws): with layer-matched random sets of k masked.
    The metric is the logit difference where the task has counterfactuals, else the answer log-prob."""

    labels: list[str]
    tasks: list[str]
    ks: np.ndarray
    clean: np.ndarray
    clean_accuracy: np.ndarray
    metric: np.ndarray
    accuracy: np.ndarray
    random_metric: np.ndarray
    random_accuracy: np.ndarray
    mode: str = "zero"

    def __repr__(self) -> str:
        ks = ", ".join(str(int(k)) for k in self.ks)
        return (
            f"Faithfulness(maps={self.labels}, tasks={len(self.tasks)}, ks=[{ks}], "
            f"draws={self.random_metric.shape[-1]}, mode={self.mode!r})"
        )

    def table(self):
        """Long format: one row per (task, k) with the clean values, each map's metric and accuracy, and the
        random sets' mean and std."""
        import pandas as pd

        rows = []
        for t, task in enumerate(self.tasks):
            for j, k in enumerate(self.ks):
                row = {"task": task, "k": int(k), "clean": self.clean[t], "acc_clean": self.clean_accuracy[t]}
                for m, label in enumerate(self.labels):
                    row[label] = self.metric[m, t, j]
                    row[f"acc {label}"] = self.accuracy[m, t, j]
                row["random"] = self.random_metric[t, j].mean()
                row["random std"] = self.random_metric[t, j].std(ddof=1)
                row["acc random"] = self.random_accuracy[t, j].mean()
                rows.append(row)
        return pd.DataFrame(rows)

    def markdown(self, decimals: int = 2) -> str:
        """Per task and k: each map's metric with its top k masked, and random-k's mean ± std."""
        f = f"{{:.{decimals}f}}"
        head = " | ".join(self.labels)
        lines = [
            f"| task | clean | k | {head} | random-k (mean ± std) |",
            "|---|---:|---:|" + "---:|" * (len(self.labels) + 1),
        ]
        for t, task in enumerate(self.tasks):
            for j, k in enumerate(self.ks):
                maps = " | ".join(f.format(self.metric[m, t, j]) for m in range(len(self.labels)))
                r = self.random_metric[t, j]
                first = task if j == 0 else ""
                clean = f.format(self.clean[t]) if j == 0 else ""
                lines.append(
                    f"| {first} | {clean} | {int(k)} | {maps} | {f.format(r.mean())} ± {f.format(r.std(ddof=1))} |"
                )
        return "\n".join(lines)


CURVES = Memo("faithfulness curves", size=64)  # one task's curves: faithfulness() asked twice recomputes nothing


def check_ks(ks, n_layers: int, n_heads: int) -> tuple[int, ...]:
    """``ks`` as increasing distinct head counts, each ≤ half the model's heads (the random sets need room)."""
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise InputError(f"ks must be a list of head counts, e.g. {KS}, got {ks!r}")
    usable = max_random_k(n_layers, n_heads)
    out = sorted({check_k("ks", k, None) for k in ks})
    if not out:
        raise InputError(f"ks is empty: give head counts, e.g. {KS}")
    if out[-1] > usable:
        raise InputError(
            f"ks holds {out[-1]}, but a {n_layers} × {n_heads} model leaves room for random sets of at most "
            f"{usable} heads: drop the larger ks"
        )
    return tuple(out)


def faithfulness(
    model,
    scores,
    tasks,
    ks=KS,
    draws: int = 10,
    seed: int = 0,
    mode: str = "zero",
    by: str = "value",
    progress: bool = True,
    cache: bool = True,
    cross_model: bool = False,
) -> Faithfulness:
    """Faithfulness curves of one or more maps: ``scores`` a HeadScores or a dict label → HeadScores (e.g.
    {"exact": ..., "attribution": ...}), ``tasks`` those to measure (each in every map). ``draws`` (≥ 10)
    layer-matched random sets per (task, k), matched to the first map's top k; ``mode`` "zero" or "mean"
    (the tasks' mean activations); ``by`` ranks heads by signed value (default) or |value| ("abs").
    ``cache``: each task's curves are kept in memory under the disk cache's rules (``cache.Memo``); False
    recomputes them. ``cross_model``: a map of another model (``results.check_model``) is refused unless True."""
    from ..models import describe

    refuse_tasks_as_scores("faithfulness", scores)
    maps = {"scores": scores} if isinstance(scores, HeadScores) else scores
    if not isinstance(maps, dict) or not maps or not all(isinstance(v, HeadScores) for v in maps.values()):
        raise InputTypeError("faithfulness() takes HeadScores, or a dict label → HeadScores, as scores=")
    check_draws("draws", draws)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    if mode not in ("zero", "mean"):
        raise InputError(f"faithfulness mode must be 'zero' or 'mean', got {mode!r}")
    info = describe(model)
    L, H = info.n_layers, info.n_heads
    for label, s in maps.items():
        check_model("faithfulness()", s, model, cross_model, label=f"scores[{label!r}]")
    ks = check_ks(ks, L, H)
    task_list = as_task_list(tasks)
    for label, s in maps.items():
        missing = [t.name for t in task_list if t.name not in s.tasks]
        if missing:
            raise InputError(f"map {label!r} does not score tasks {missing}: score them first")
    if not isinstance(cache, bool):
        raise InputError(f"cache must be True or False, got {cache!r}")
    means = head_means(model, task_list, progress=progress) if mode == "mean" else None
    # the means are of every task given: in mean mode a task's curves depend on the whole set
    of_means = [ids_fingerprint(model.tokenizer, t) for t in task_list] if mode == "mean" else None
    n_sets = 1 + len(ks) * (len(maps) + draws)  # the clean run, then per k each map's top k and the random sets
    passes = [-(-n_sets // _sets_per_pass(model, task)) for task in task_list]
    bar = progress_bar(sum(passes), "faithfulness", progress)  # a step per stacked pass, a kept task's at once
    curves = []
    try:
        for task, n_passes in zip(task_list, passes):
            digest = hashlib.blake2b(digest_size=16)
            for label, s in maps.items():
                digest.update(label.encode() + s[task.name].tobytes())
            settings = {
                "what": "faithfulness",
                "task": ids_fingerprint(model.tokenizer, task),
                "maps": digest.hexdigest(),
                "ks": list(ks),
                "draws": int(draws),
                "seed": int(seed),
                "mode": mode,
                "by": by,
                "means_of": of_means,
            }
            before = bar.n
            make = lambda task=task: _task_curves(  # noqa: E731
                model, maps, task, ks, draws, seed, mode, by, means, bar.update
            )
            curves.append(CURVES.get(model, settings, make, cache))
            bar.update(n_passes - (bar.n - before))  # kept from an earlier call: its passes at once
    finally:
        bar.close()
    stack = lambda i, axis: np.stack([c[i] for c in curves], axis)  # noqa: E731
    return Faithfulness(
        list(maps),
        [t.name for t in task_list],
        np.array(ks),
        stack(0, 0),
        stack(1, 0),
        stack(2, 1),
        stack(3, 1),
        stack(4, 0),
        stack(5, 0),
        mode,
    )


def _task_curves(model, maps: dict, task: Task, ks, draws: int, seed: int, mode: str, by: str, means, advance=None):
    """One task: clean metric and accuracy, (M, K) per map, (K, draws) random — all sets in stacked passes
    (``advance()`` after each)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rng = np.random.default_rng([seed, zlib.crc32(task.name.encode())])  # a task's draws do not depend on the others
    sets = []
    for k in ks:
        tops = [select_heads(s, task.name, "top_k", k=k, by=by) for s in maps.values()]
        sets += tops + [layer_matched_random(tops[0], L, H, rng) for _ in range(draws)]
    metric, accuracy = _masked_behaviour(model, task, [[]] + sets, mode, means, advance)
    per_k = len(maps) + draws
    m, a = metric[1:].reshape(len(ks), per_k), accuracy[1:].reshape(len(ks), per_k)
    M = len(maps)
    return metric[0], accuracy[0], m[:, :M].T, a[:, :M].T, m[:, M:], a[:, M:]


def _sets_per_pass(model, task: Task) -> int:
    """Head sets one stacked pass over ``task``'s items holds (the token budget of a no-grad pass; on the nnsight
    engine, a trace's rows)."""
    if _traced(model):
        return max(1, nnsight_engine.ROWS_PER_TRACE // len(task))
    T = int(encode(task, model.tokenizer, "logprob", warn=False).tokens.shape[1])
    return max(1, budget.tokens(model, "exact", length=T) // (len(task) * T))


def _masked_behaviour(model, task: Task, sets: list, mode: str, means, advance=None) -> tuple[np.ndarray, np.ndarray]:
    """(mean metric, greedy accuracy) per head set (len(sets),), as ``_behaviours``: the
    sets run as stacked copies of the task's items, as many per pass as the token budget holds (``advance()``
    after each pass). On the nnsight engine (zero ablation): ``nnsight_engine.masked``, the same copies in traces."""
    if _traced(model):
        return _traced_behaviour(model, task, sets, means if mode == "mean" else None, advance)
    check_logits(model)  # proves the readout once, outside the stacked hooks
    n = len(task)
    per_pass = _sets_per_pass(model, task)
    metric, accuracy = [], []
    for start in range(0, len(sets), per_pass):
        chunk = sets[start : start + per_pass]
        with mask_head_sets(model, chunk, mode, means):
            ev = evaluate(model, task, batch_size=n, copies=len(chunk))
        values = ev.logit_diff if ev.logit_diff is not None else ev.logprob
        metric.append(values.double().view(len(chunk), n).mean(1).numpy())
        accuracy.append(ev.correct.double().view(len(chunk), n).mean(1).numpy())
        if advance is not None:
            advance()
    return np.concatenate(metric), np.concatenate(accuracy)


def _traced(model) -> bool:
    return getattr(model, "engine", "bridge") != "bridge"


def _traced_behaviour(model, task: Task, sets: list, means, advance=None) -> tuple[np.ndarray, np.ndarray]:
    """``_masked_behaviour`` on the nnsight engine: each head set ablated (zero, or ``means`` (L, H, d_head)) in
    its copy of the task's items (``nnsight_engine.masked``, one request per ``TRACES_PER_REQUEST`` traces)."""
    import torch

    L, H = model.cfg.n_layers, model.cfg.n_heads
    lp = encode(task, model.tokenizer, "logprob", warn=False)
    check_length(model, lp)
    ld = encode(task, model.tokenizer, "logit_diff", warn=False) if task.has_counterfactuals else None
    masks = torch.zeros((len(sets), L, H), dtype=torch.bool)
    for c, heads in enumerate(sets):
        for layer, head in check_heads(heads, L, H):
            masks[c, layer, head] = True
    means = None if means is None else torch.as_tensor(means, dtype=torch.float32)
    logprob, correct, logit_diff = nnsight_engine.masked(model, lp, ld, masks, Requests(model), advance, means)
    metric = logit_diff if logit_diff is not None else logprob
    return metric.astype(np.float64).mean(1), correct.astype(np.float64).mean(1)
