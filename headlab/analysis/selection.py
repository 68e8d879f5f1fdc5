"""Picking a task's "cognitive heads" from a map: the paper's elbow rule, top-k, or a threshold."""

from __future__ import annotations

import numpy as np

from ..results import HeadScores

RULES = ("elbow", "top_k", "threshold")


def elbow_count(sorted_desc: np.ndarray) -> int:
    """How many leading values of a descending curve form its head: those before the elbow, the point
    farthest from the chord between the curve's first and last points (Cognitive Mirrors' elbow; the
    elbow itself is the first point of the flat tail). At least 1."""
    y = np.asarray(sorted_desc, dtype=np.float64)
    n = len(y)
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
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: choose from {RULES}")
    if by not in ("abs", "value"):
        raise ValueError(f"by must be 'abs' or 'value', got {by!r}")
    m = scores[task]
    key = np.abs(m) if by == "abs" else m
    order = np.argsort(-key, axis=None, kind="stable")
    ranked = key.flat[order]
    if rule == "top_k":
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= m.size:
            raise ValueError(f"rule='top_k' needs k between 1 and {m.size}, got {k!r}")
        n = int(k)
    elif rule == "threshold":
        if threshold is None:
            raise ValueError("rule='threshold' needs threshold=<score>")
        n = int((ranked >= threshold).sum())
    else:
        n = elbow_count(np.clip(ranked, 0, None) if by == "value" else ranked)
    H = m.shape[1]
    return [(int(i // H), int(i % H)) for i in order[:n]]
