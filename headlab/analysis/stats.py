"""Trust in the map: how much of a head map survives resampling the task's items, or rerunning.

- ``bootstrap(scores, n=200, seed=0, ...)`` → ``Bootstrap``: per head (task, layer, head) the mean over
  items, a 95% percentile CI from ``n`` resamples of each task's items, whether that CI excludes 0, and
  how often the head is selected (threshold / top-k) across resamples.
- ``always_any(runs, ...)`` → ``AlwaysAny``: the heads selected in every run and in at least one, over
  HeadScores of several runs (seeds, item splits) or a ``Bootstrap``'s resamples.
- ``selected(maps, ...)``: the one selection rule both use.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from ..errors import InputError, InputTypeError
from ..results import NORMALIZATIONS, HeadScores, check_k, check_threshold

__all__ = ["AlwaysAny", "Bootstrap", "CI", "always_any", "bootstrap", "check_items", "selected"]

CI = (2.5, 97.5)  # percentiles of the resampled means: a 95% interval
# Resamples at most: percentile intervals settle by about 2,000 (Efron & Tibshirani, An Introduction to the
# Bootstrap, ch. 13); every resample keeps a whole map (n × tasks × heads float64: 10,000 of 8 tasks × 270 heads
# hold 173 MB).
MAX_RESAMPLES = 10_000


def _normalized(maps: np.ndarray, kind: str) -> np.ndarray:
    """``HeadScores.normalized(kind)`` applied to every (layer, head) map of ``maps`` (..., layer, head)."""
    flat = SimpleNamespace(values=maps.reshape(-1, *maps.shape[-2:]))
    return HeadScores.normalized(flat, kind).reshape(maps.shape)


def _check_rule(threshold, top_k, normalize, n_heads: int) -> None:
    if (threshold is None) == (top_k is None):
        raise InputError("give threshold or top_k (one of them) to select heads")
    if threshold is not None:
        check_threshold("threshold", threshold)
    if top_k is not None:
        check_k("top_k", top_k, n_heads)
    if not isinstance(normalize, str) or normalize not in NORMALIZATIONS:
        raise InputError(f"unknown normalize {normalize!r}: choose from {NORMALIZATIONS}")


def selected(maps, threshold=None, top_k=None, normalize="share") -> np.ndarray:
    """(..., layer, head) bool: the heads each (layer, head) map selects — ``normalized(normalize) ≥
    threshold``, or the ``top_k`` highest signed values (ties broken by position, as ``HeadScores.top``)."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim < 2:
        raise InputError(f"maps must be (..., layer, head) arrays, got shape {maps.shape}")
    L, H = maps.shape[-2:]
    _check_rule(threshold, top_k, normalize, L * H)
    if threshold is not None:
        return _normalized(maps, normalize) >= threshold
    flat = maps.reshape(-1, L * H)
    best = np.argsort(-flat, axis=1, kind="stable")[:, :top_k]
    keep = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(keep, best, True, axis=1)
    return keep.reshape(maps.shape)


def check_items(scores: HeadScores) -> None:
    """Raise a one-line ValueError unless every task has ≥ 2 per-example scores to resample."""
    if not isinstance(scores, HeadScores):
        raise InputTypeError(f"expected HeadScores, not {type(scores).__name__}")
    pe, n_items = scores.per_example, scores.n_examples
    T, L, H = scores.shape
    if pe.ndim != 4 or pe.shape[0] != T or pe.shape[2:] != (L, H):
        raise InputError(f"per_example has shape {pe.shape}, expected ({T}, items, {L}, {H}): no per-item scores")
    for task, n in zip(scores.tasks, n_items):
        if n < 2:
            raise InputError(f"task {task!r} has {n} item(s): resampling needs at least 2 per task")
        if n > pe.shape[1]:
            raise InputError(f"task {task!r} has n_examples {n} but per_example holds {pe.shape[1]} items")
    valid = np.arange(pe.shape[1])[None, :] < n_items[:, None]  # (task, item)
    if np.isnan(pe[valid]).any():
        raise InputError("per_example has NaN among a task's first n_examples items: cannot resample")


@dataclass
class Bootstrap:
    """Item-bootstrap of a head map. Arrays are (task, layer, head) unless noted.

    mean   the head's mean score over the task's items (the point estimate)
    lo, hi the 2.5 and 97.5 percentiles of the resampled means (95% CI)
    freq   fraction of resamples selecting the head (None when no threshold / top_k was given)
    runs   (n, task, layer, head) the resampled mean maps
    """

    scores: HeadScores
    runs: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    freq: np.ndarray | None
    seed: int
    threshold: float | None
    top_k: int | None
    normalize: str

    @property
    def tasks(self) -> list[str]:
        return self.scores.tasks

    @property
    def significant(self) -> np.ndarray:
        """(task, layer, head) bool: the CI excludes 0."""
        return (self.lo > 0) | (self.hi < 0)


def bootstrap(
    scores: HeadScores, n: int = 200, seed: int = 0, threshold=None, top_k=None, normalize: str = "share"
) -> Bootstrap:
    """Resample each task's items with replacement ``n`` times (at most ``MAX_RESAMPLES``;
    ``numpy.random.default_rng(seed)``: the same seed gives the same result) and take each head's mean per
    resample.

    Uses ``scores.per_example[t, :n_examples[t]]`` (the NaN padding is never drawn). With ``threshold``
    or ``top_k`` (see ``selected``), ``freq`` says how often each head is selected.
    """
    check_items(scores)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InputError(f"n (resamples) must be an int ≥ 1, got {n!r}")
    if n > MAX_RESAMPLES:
        raise InputError(
            f"n={n!r} resamples: at most {MAX_RESAMPLES} (a 95% percentile interval settles by about 2,000, and each "
            f"resample keeps a whole map in memory): use n ≤ {MAX_RESAMPLES}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    T, L, H = scores.shape
    if threshold is not None or top_k is not None:
        _check_rule(threshold, top_k, normalize, L * H)
    rng = np.random.default_rng(seed)
    runs = np.empty((n, T, L, H))
    mean = np.empty((T, L, H))
    for t, n_items in enumerate(scores.n_examples):
        items = scores.per_example[t, :n_items].reshape(n_items, L * H).astype(np.float64)  # (item, head)
        # a resample = how often each item is drawn; its mean = counts @ items / n_items
        counts = rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n)  # (n, item)
        runs[:, t] = (counts @ items / n_items).reshape(n, L, H)
        mean[t] = items.mean(0).reshape(L, H)
    lo, hi = np.percentile(runs, CI, axis=0)
    freq = None if threshold is None and top_k is None else selected(runs, threshold, top_k, normalize).mean(0)
    return Bootstrap(scores, runs, mean, lo, hi, freq, seed, threshold, top_k, normalize)


@dataclass
class AlwaysAny:
    """Heads selected across runs, (task, layer, head): ``always`` in every run, ``any`` in at least one,
    ``freq`` the fraction of runs. ``always ⊆ any``."""

    tasks: list[str]
    always: np.ndarray
    any: np.ndarray
    freq: np.ndarray
    n_runs: int


def always_any(runs, threshold=None, top_k=None, normalize: str = "share") -> AlwaysAny:
    """Which heads survive every run. ``runs``: HeadScores of the same tasks and shape (e.g. seeds), or a
    ``Bootstrap`` (its resamples). Exactly one of ``threshold`` / ``top_k`` (see ``selected``)."""
    if isinstance(runs, Bootstrap):
        tasks, maps = runs.tasks, runs.runs
    elif isinstance(runs, HeadScores):
        raise InputTypeError(
            "always_any() takes several runs: a list of HeadScores (e.g. scores.per_run() for gating seeds) or "
            "a Bootstrap, not one HeadScores"
        )
    else:
        try:
            runs = list(runs)
        except TypeError:
            raise InputTypeError(
                f"runs must be a list of HeadScores or a Bootstrap, not {type(runs).__name__}"
            ) from None
        if not runs:
            raise InputError("always_any needs at least one run")
        for i, s in enumerate(runs):
            if not isinstance(s, HeadScores):
                raise InputTypeError(f"run {i} is {type(s).__name__}, expected HeadScores or a Bootstrap")
            if s.tasks != runs[0].tasks:
                raise InputError(f"run {i} has tasks {s.tasks}, run 0 has {runs[0].tasks}: give the same tasks")
            if s.shape != runs[0].shape:
                raise InputError(f"run {i} has shape {s.shape}, run 0 has {runs[0].shape} (tasks, layers, heads)")
        tasks, maps = runs[0].tasks, np.stack([s.values for s in runs])
    keep = selected(maps, threshold, top_k, normalize)
    return AlwaysAny(list(tasks), keep.all(0), keep.any(0), keep.mean(0), len(maps))
