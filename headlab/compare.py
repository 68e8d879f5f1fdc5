"""Agreement between two head maps (methods, fits or models) on the same tasks."""
from __future__ import annotations

import numpy as np

from .results import HeadScores


def _top_set(m: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-m, axis=None, kind="stable")[:k].tolist())


def agreement(a: HeadScores, b: HeadScores, k: int = 20):
    """Per task: Spearman ρ over the whole map, ρ over a's top-k heads, and top-k overlap (Jaccard).

    ``a`` is the reference (e.g. exact ablation); both must score the same tasks on the same model shape.
    """
    import pandas as pd
    from scipy.stats import spearmanr

    if a.values.shape[1:] != b.values.shape[1:]:
        raise ValueError(f"maps differ in shape {a.values.shape[1:]} vs {b.values.shape[1:]}: compare one model")
    rows = []
    for task in a.tasks:
        x, y = a[task].ravel(), b[task].ravel()
        top = np.argsort(-x, kind="stable")[:k]
        ta, tb = _top_set(a[task], k), _top_set(b[task], k)
        rows.append({"task": task, "rho": spearmanr(x, y).statistic, f"rho_top{k}": spearmanr(x[top], y[top]).statistic,
                     f"jaccard_top{k}": len(ta & tb) / len(ta | tb)})
    return pd.DataFrame(rows).set_index("task")


def disagreements(a: HeadScores, b: HeadScores, task: str, n: int = 5):
    """The n heads whose ranks differ most between ``a`` and ``b`` in ``task``: layer, head, values, ranks."""
    import pandas as pd

    ra, rb = a.rank(task), b.rank(task)
    gap = np.abs(ra - rb)
    order = np.argsort(-gap, axis=None, kind="stable")[:n]
    H = a.values.shape[2]
    return pd.DataFrame([{"layer": int(i // H), "head": int(i % H), "a": a[task].flat[i], "b": b[task].flat[i],
                          "rank_a": int(ra.flat[i]), "rank_b": int(rb.flat[i])} for i in order])
