"""Does a map's top set matter? Mask a task's top-k heads vs layer-matched random heads (Cognitive Mirrors'
Table 1, done right) and across tasks (Table 2).

Random sets exclude the top heads, match their layer distribution (a layer that runs out of other heads
borrows from the nearest layers) and are drawn ``n_random`` times; drops are reported as mean ± std.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..metrics import evaluate
from ..results import HeadScores, check_k
from ..tasks import Task, as_task_list
from .interventions import MODES, check_heads, head_means, mask_heads
from .selection import select_heads


def _behaviour(model, task: Task) -> tuple[float, float]:
    """(mean metric, greedy accuracy): the metric is the logit difference when the task has
    counterfactuals, else the answer log-prob."""
    ev = evaluate(model, task)
    metric = ev.logit_diff if ev.logit_diff is not None else ev.logprob
    return float(metric.mean()), float(ev.correct.float().mean())


def layer_matched_random(top: list[tuple[int, int]], n_layers: int, n_heads: int, rng) -> list[tuple[int, int]]:
    """As many heads as ``top``, none of them in ``top``, with the same count per layer where the layer
    has room (else from the nearest layers). A one-line ValueError when the model has fewer other heads than
    ``top`` holds (the draw would be smaller than the set it is compared with)."""
    top = check_heads(top, n_layers, n_heads)
    if n_layers * n_heads - len(top) < len(top):
        raise ValueError(
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
) -> Validation:
    """Mask each task's top-k heads of ``scores`` (k = the elbow count when None) vs ``n_random`` (≥ 10)
    layer-matched random sets; ``mode`` as in ``mask_heads`` ("mean" uses the tasks' mean activations).

    ``by``: rank heads by signed score ("value": heads that help, the default) or |score| ("abs").
    ratio = drop(top-k) / mean drop(random-k): how many times more the top heads matter.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ..models import describe

    if not isinstance(scores, HeadScores):
        raise TypeError(f"validate() takes HeadScores as scores=, not {type(scores).__name__}")
    if isinstance(n_random, bool) or not isinstance(n_random, numbers.Integral) or n_random < 10:
        raise ValueError(f"n_random={n_random!r}: draw at least 10 random sets for a mean ± std")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: choose from {MODES}")
    if not isinstance(cross_task, bool):
        raise ValueError(f"cross_task must be True or False, got {cross_task!r}")
    task_list = as_task_list(tasks)
    missing = [t.name for t in task_list if t.name not in scores.tasks]
    if missing:
        raise ValueError(f"tasks {missing} are not in the scores ({scores.tasks}): score them first")
    _, L, H = scores.shape
    info = describe(model)
    if (info.n_layers, info.n_heads) != (L, H):
        raise ValueError(
            f"scores are of a {L} × {H} model ({scores.model.name}) but the model is {info.n_layers} × "
            f"{info.n_heads} ({info.name}): validate a map on the model it was computed on"
        )
    usable = max_random_k(L, H)
    if k is not None:
        check_k("k", k, L * H)
    heads = {t.name: select_heads(scores, t.name, "elbow" if k is None else "top_k", k=k, by=by) for t in task_list}
    for name, top in heads.items():  # before any compute: every random set must be as large as its top set
        if len(top) > usable:
            how = f"k={k}" if k is not None else f"the elbow picks {len(top)} heads of {name!r}"
            raise ValueError(
                f"{how}, but a {L} × {H} model leaves only {L * H - len(top)} other heads for each random set: "
                f"the largest usable k is {usable}"
            )
    means = head_means(model, task_list) if mode == "mean" else None
    rng = np.random.default_rng(seed)
    clean = {t.name: _behaviour(model, t) for t in task_list}
    rows = []
    for task in tqdm(task_list, desc="validate", disable=not progress, leave=False):
        top = heads[task.name]
        with mask_heads(model, top, mode, means=means):
            m_top, a_top = _behaviour(model, task)
        rand = []
        for _ in range(n_random):
            with mask_heads(model, layer_matched_random(top, L, H, rng), mode, means=means):
                rand.append(_behaviour(model, task))
        rand = np.array(rand)
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
        for a in tqdm(task_list, desc="cross-task", disable=not progress, leave=False):
            with mask_heads(model, heads[a.name], mode, means=means):
                for b in task_list:
                    cross.loc[a.name, b.name] = clean[b.name][0] - _behaviour(model, b)[0]
    return Validation(pd.DataFrame(rows).set_index("task"), cross, heads)
