"""Picking a task's "cognitive heads" from a map: the paper's elbow rule, top-k, or a threshold."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, InputTypeError
from ..results import HeadScores, check_k, check_threshold

__all__ = ["RULES", "elbow_count", "select_from", "select_heads"]

RULES = ("elbow", "top_k", "threshold")


def elbow_count(sorted_desc: np.ndarray) -> int:
    """How many leading values of a descending curve form its head: those before the elbow, the point
    farthest from the chord between the curve's first and last points (Cognitive Mirrors' elbow; the
    elbow itself is the first point of the flat tail). At least 1, except for a curve of zeros (an empty one
    too): no head does anything there, so none is selected (0)."""
    y = np.asarray(sorted_desc, dtype=np.float64)
    if y.ndim != 1 or not np.isfinite(y).all():
        raise InputError(f"elbow_count() takes a 1-d curve of finite values, got shape {y.shape}")
    if (np.diff(y) > 0).any():
        raise InputError("elbow_count() takes a descending curve: sort it first (np.sort(values)[::-1])")
    n = len(y)
    if n == 0 or y[0] == y[-1] == 0:
        return 0
    if n < 3 or y[0] == y[-1]:
        return n if n < 3 else 1
    x = np.arange(n, dtype=np.float64)
    # distance of (x_i, y_i) from the line through (0, y_0) and (n-1, y_{n-1}), up to a constant factor
    dist = np.abs((y[-1] - y[0]) * x - (n - 1) * (y - y[0]))
    return max(1, int(np.argmax(dist)))


def select_heads(
    scores: HeadScores, task, rule: str = "elbow", k: int | None = None, threshold: float | None = None, by: str = "abs"
) -> list[tuple[int, int]]:
    """A task's selected heads [(layer, head), ...], most important first.

    ``by``: "abs" ranks by |score| (the paper), "value" by the signed score (heads that help the task).
    ``rule``: "elbow" (the sorted curve's elbow), "top_k" (``k`` heads) or "threshold" (score ≥ ``threshold``).
    Missing (NaN) heads are never selected; the elbow of an all-zero map (by "value": of a map with no
    positive score) selects none.
    """
    if not isinstance(scores, HeadScores):
        raise InputTypeError(f"select_heads() takes HeadScores, not {type(scores).__name__}")
    if not isinstance(rule, str) or rule not in RULES:
        raise InputError(f"unknown rule {rule!r}: choose from {RULES}")
    if not isinstance(by, str) or by not in ("abs", "value"):
        raise InputError(f"by must be 'abs' or 'value', got {by!r}")
    if rule != "top_k" and k is not None:
        raise InputError(f"k={k!r} is given but rule={rule!r} ignores it: pass rule='top_k' (or drop k)")
    if rule != "threshold" and threshold is not None:
        raise InputError(
            f"threshold={threshold!r} is given but rule={rule!r} ignores it: pass rule='threshold' (or drop it)"
        )
    return select_from(scores[task], rule, k, threshold, by)


def select_from(values: np.ndarray, rule: str = "elbow", k=None, threshold=None, by: str = "abs"):
    """``select_heads`` on a bare (n_layers, n_heads) array (a map, or the difference of two)."""
    m = np.asarray(values, dtype=np.float64)
    key = np.abs(m) if by == "abs" else m
    order = np.argsort(-key, axis=None, kind="stable")
    order = order[~np.isnan(key.flat[order])]  # NaN sorts last: dropped
    ranked = key.flat[order]
    if rule == "top_k":
        if k is None:
            raise InputError(f"rule='top_k' needs k between 1 and {m.size}, got None")
        n = check_k("k", k, m.size)
    elif rule == "threshold":
        if threshold is None:
            raise InputError("rule='threshold' needs threshold=<score>")
        n = int((ranked >= check_threshold("threshold", threshold)).sum())
    else:
        n = elbow_count(np.clip(ranked, 0, None) if by == "value" else ranked)
    H = m.shape[1]
    return [(int(i // H), int(i % H)) for i in order[:n]]
