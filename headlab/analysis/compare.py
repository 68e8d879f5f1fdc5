"""How two head maps agree, how tasks share heads, and how maps of models of different depth line up.

- ``agreement`` / ``compare``: per task Spearman ρ, ρ over the reference's top-k, top-k Jaccard
  (``viz.plot.compare_scatter`` draws one scatter of head scores per task).
- ``disagreements``: the heads whose ranks differ most between two maps; ``patch_path``: why — the metric
  drop along the path from a head's clean z to its counterfactual z (attribution sees only its slope at 0).
- ``task_overlap``: task × task top-k Jaccard (which functions share heads); draw with ``plot.plot_matrix``.
- ``relative_depth`` / ``cross_model``: layers mapped onto relative depth [0, 1], so a 30-layer and a
  2-layer model can be compared per task (``viz.plot.cross_model_plot`` draws it).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import InputError, InputTypeError
from ..results import HeadScores, check_k, check_threshold
from .stats import selected

__all__ = [
    "agreement",
    "common_tasks",
    "compare",
    "cross_model",
    "disagreements",
    "patch_path",
    "relative_depth",
    "task_overlap",
]


def check_scores(*pairs) -> None:
    """(name, value) pairs: each must be HeadScores (one-line TypeError naming the argument)."""
    for name, value in pairs:
        if not isinstance(value, HeadScores):
            raise InputTypeError(
                f"{name} must be HeadScores (from headlab.score or HeadScores.load), not {type(value).__name__}"
            )


def _top_set(m: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-m, axis=None, kind="stable")[:k].tolist())


def common_tasks(a: HeadScores, b: HeadScores) -> list[str]:
    """The tasks both maps score, in ``a``'s order."""
    check_scores(("a", a), ("b", b))
    common = [t for t in a.tasks if t in b.tasks]
    if not common:
        raise InputError(f"no task in common: a has {a.tasks}, b has {b.tasks}")
    return common


def agreement(a: HeadScores, b: HeadScores, k: int = 20):
    """Per task: Spearman ρ over the whole map, ρ over a's top-k heads, and top-k overlap (Jaccard).

    ``a`` is the reference (e.g. exact ablation); both must score the same tasks on the same model shape.
    """
    import pandas as pd
    from scipy.stats import spearmanr

    check_scores(("a", a), ("b", b))
    if a.values.shape[1:] != b.values.shape[1:]:
        raise InputError(f"maps differ in shape {a.values.shape[1:]} vs {b.values.shape[1:]}: compare one model")
    size = a.values.shape[1] * a.values.shape[2]
    check_k("k", k, size)
    missing = [t for t in a.tasks if t not in b.tasks]
    if missing:
        raise InputError(f"b does not score task(s) {missing}: use compare(a, b) for the tasks both score")
    rows = []
    for task in a.tasks:
        x, y = a[task].ravel(), b[task].ravel()
        top = np.argsort(-x, kind="stable")[:k]
        ta, tb = _top_set(a[task], k), _top_set(b[task], k)
        rows.append(
            {
                "task": task,
                "rho": spearmanr(x, y).statistic,
                f"rho_top{k}": spearmanr(x[top], y[top]).statistic,
                f"jaccard_top{k}": len(ta & tb) / len(ta | tb),
            }
        )
    return pd.DataFrame(rows).set_index("task")


def compare(a: HeadScores, b: HeadScores, k: int = 20):
    """``agreement`` over the tasks both maps score (a's order): a DataFrame indexed by task with columns
    ``rho``, ``rho_top{k}`` (over a's top-k heads) and ``jaccard_top{k}``."""
    return agreement(a.select(common_tasks(a, b)), b, k)


def disagreements(a: HeadScores, b: HeadScores, task: str, n: int = 5):
    """The n heads whose ranks differ most between ``a`` and ``b`` in ``task``: layer, head, values, ranks. A head
    missing (NaN) in either map has no rank and is never listed."""
    import pandas as pd

    check_scores(("a", a), ("b", b))
    if a.values.shape[1:] != b.values.shape[1:]:
        raise InputError(f"maps differ in shape {a.values.shape[1:]} vs {b.values.shape[1:]}: compare one model")
    check_k("n", n)
    ra, rb = a.rank(task), b.rank(task)
    gap = np.where((ra > 0) & (rb > 0), np.abs(ra - rb), -1)  # a missing head in either map has no rank to compare
    order = [i for i in np.argsort(-gap, axis=None, kind="stable") if gap.flat[i] >= 0][:n]
    H = a.values.shape[2]
    return pd.DataFrame(
        [
            {
                "layer": int(i // H),
                "head": int(i % H),
                "a": a[task].flat[i],
                "b": b[task].flat[i],
                "rank_a": int(ra.flat[i]),
                "rank_b": int(rb.flat[i]),
            }
            for i in order
        ]
    )


def patch_path(
    model, task, layer: int, head: int, alphas=(0.0, 0.25, 0.5, 0.75, 1.0), metric: str = "logit_diff"
) -> np.ndarray:
    """Mean metric drop (len(alphas),) when head (layer, head)'s z becomes z + α (z_cf − z) at every position.

    α = 1 is exact resample ablation; attribution patching estimates the curve by its slope at α = 0, so a
    curve that bends (or first rises) is where the two disagree. Items whose counterfactual differs in
    token length are skipped, as in ``score``.
    """
    import torch

    from ..engine import hooks
    from ..engine.forward import z_of
    from ..engine.replay import Replay
    from ..metrics import check_length, encode, metric_at
    from ..tasks import Task

    n_layers, n_heads = len(model.blocks), model.cfg.n_heads
    for name, value in (("layer", layer), ("head", head)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InputError(f"{name} must be an int, got {value!r}")
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise InputError(f"head L{layer}.H{head} is outside this {n_layers} × {n_heads} model")
    if not isinstance(task, Task):
        raise InputTypeError(f"patch_path() takes one Task, not {type(task).__name__}")
    try:
        alphas = [check_threshold("alphas", float(a) if isinstance(a, np.floating) else a) for a in alphas]
    except TypeError:
        raise InputError(f"alphas must be a list of numbers, got {alphas!r}") from None
    if not alphas:
        raise InputError("alphas is empty: give the points of the path, e.g. (0, 0.5, 1)")
    if not task.has_counterfactuals:
        raise InputError(
            f"task {task.name!r} has no counterfactuals (or only some items have one): patch_path needs them"
        )
    enc = encode(task, model.tokenizer, metric)
    check_length(model, enc)
    enc = enc.subset(torch.nonzero(enc.cf_ok).flatten())
    if enc.n == 0 or enc.cf_tokens is None:
        raise InputError(f"task {task.name!r} has no usable counterfactuals: patch_path needs them")
    cf = z_of(model, enc.cf_tokens)[layer][:, :, head]
    replay = Replay(model, enc.tokens, enc.read_pos, keep_z=False)  # re-runs only blocks ≥ layer
    with torch.no_grad():
        clean = metric_at(model, replay.clean_read, enc)

    def drop(alpha: float) -> float:
        def mix(z, hook):
            z[:, :, head] += alpha * (cf - z[:, :, head])
            return z

        with torch.no_grad():
            ablated = metric_at(model, replay.read_from(layer, fwd_hooks=[(hooks.z(layer), mix)]), enc)
        return (clean - ablated).mean().item()

    return np.array([drop(float(a)) for a in alphas])


def task_overlap(scores: HeadScores, k: int = 20):
    """(task × task) DataFrame: Jaccard overlap of the tasks' top-k heads (by signed value); 1 on the
    diagonal, symmetric."""
    import pandas as pd

    check_scores(("scores", scores))
    check_k("k", k, scores.values.shape[1] * scores.values.shape[2])
    top = selected(scores.values, top_k=k).reshape(len(scores.tasks), -1).astype(np.int64)  # (task, head)
    shared = top @ top.T
    return pd.DataFrame(shared / (2 * k - shared), index=scores.tasks, columns=scores.tasks)


def relative_depth(scores: HeadScores, bins: int = 10):
    """Each task's map on relative depth: layer l spans depth [l/L, (l+1)/L), cut into ``bins`` equal bins.

    A DataFrame indexed by (task, depth = bin centre) with columns
    ``share``: the fraction of the task's Σ|score| in the bin (sums to 1 over bins; a layer split by a bin
    edge is shared in proportion), ``peak``: the largest |score| of a head in a layer overlapping the bin,
    over the task's largest |score| (1 in the top head's bins). Both are scale-free: any two models compare.
    """
    import pandas as pd

    check_scores(("scores", scores))
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
        raise InputError(f"bins must be an int ≥ 1, got {bins!r}")
    T, L, H = scores.shape
    # overlap of layer l and bin b in units of 1/(bins·L): exact integers, so shared edges give 0
    b, l = np.arange(bins)[:, None], np.arange(L)[None, :]
    overlap = np.clip(np.minimum((b + 1) * L, (l + 1) * bins) - np.maximum(b * L, l * bins), 0, None)  # (bin, layer)
    mag = np.abs(scores.values)
    per_layer = mag.sum(2) / np.maximum(mag.sum((1, 2)), 1e-30)[:, None]  # (task, layer)
    share = per_layer @ (overlap / bins).T  # (task, bin)
    layer_peak = mag.max(2) / np.maximum(mag.max((1, 2)), 1e-30)[:, None]  # (task, layer)
    peak = np.where(overlap[None] > 0, layer_peak[:, None, :], 0.0).max(2)  # (task, bin)
    depth = (np.arange(bins) + 0.5) / bins
    index = pd.MultiIndex.from_product([scores.tasks, depth], names=["task", "depth"])
    return pd.DataFrame({"share": share.ravel(), "peak": peak.ravel()}, index=index)


def cross_model(a: HeadScores, b: HeadScores, bins: int = 10):
    """Per task both score: Spearman ρ of the two models' ``relative_depth`` share and peak profiles, and
    the depth (bin centre) holding each model's largest share. Any depths and head counts."""
    import pandas as pd
    from scipy.stats import spearmanr

    check_scores(("a", a), ("b", b))
    pa, pb = relative_depth(a, bins), relative_depth(b, bins)
    rows = []
    for task in common_tasks(a, b):
        x, y = pa.loc[task], pb.loc[task]
        rows.append(
            {
                "task": task,
                "rho_share": spearmanr(x["share"], y["share"]).statistic,
                "rho_peak": spearmanr(x["peak"], y["peak"]).statistic,
                "depth_a": x["share"].idxmax(),
                "depth_b": y["share"].idxmax(),
            }
        )
    return pd.DataFrame(rows).set_index("task")
