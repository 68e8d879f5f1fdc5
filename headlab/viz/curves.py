"""Faithfulness curves: the metric and greedy accuracy against the number of heads masked (Cognitive Mirrors'
Fig. 3 protocol), one line per map's top k and the band of layer-matched random k.

``faithfulness_plot(curves, task)`` draws one task of ``validation.faithfulness``'s result: left the metric,
right the accuracy, k on a log₂ axis, the clean value as a dotted line, the random sets as their mean ± one
standard deviation (shaded) — a map is faithful where its line falls well below the band.
``faithfulness_grid(curves)`` draws every task's metric panel.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..analysis.validation import Faithfulness
from ..errors import InputError, InputTypeError, NotFoundError
from .plot import HeadlabFigure

__all__ = ["faithfulness_grid", "faithfulness_plot"]

RANDOM = "0.55"  # colour of the random-k band


def check_curves(fn: str, curves) -> Faithfulness:
    """``curves`` if it is ``faithfulness``'s result; else one TypeError saying how to compute the curves."""
    if isinstance(curves, Faithfulness):
        return curves
    kind = type(curves).__name__
    what = {"HeadScores": "a map (HeadScores)", "Validation": "validate()'s one-k table (Validation)"}.get(kind, kind)
    if isinstance(curves, (list, tuple, dict)):
        what = f"a {kind} of {type(next(iter(curves), None)).__name__}" if len(curves) else f"an empty {kind}"
    raise InputTypeError(
        f"{fn}() draws faithfulness curves, not {what}: compute them first with headlab.faithfulness(model, scores, "
        "tasks, ks=...)"
    )


def check_size(name: str, value) -> tuple[float, float]:
    """``value`` as (width, height) in inches, two positive finite numbers; one-line ValueError naming ``name``."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or min(value) <= 0:
        raise InputError(f"{name} must be (width, height) in inches, two positive numbers, got {value!r}")
    return float(value[0]), float(value[1])


def _task_index(curves, task) -> int:
    if task is not None and not isinstance(task, str):
        raise InputTypeError(f"task= is a task's name, one of {curves.tasks}, not {type(task).__name__} {task!r}")
    if task is None:
        if len(curves.tasks) != 1:
            raise InputError(
                f"these curves hold {len(curves.tasks)} tasks: name one as task=, one of {curves.tasks}, "
                "or draw every task with headlab.viz.curves.faithfulness_grid(curves)"
            )
        return 0
    if task not in curves.tasks:
        raise NotFoundError(f"no task {task!r} in these curves; tasks: {curves.tasks}")
    return curves.tasks.index(task)


def _draw(ax, curves, t: int, accuracy: bool, legend: bool) -> None:
    """One panel of task index ``t``: each map's top-k line, the random band, the clean level."""
    ks = curves.ks
    values = curves.accuracy if accuracy else curves.metric
    random = (curves.random_accuracy if accuracy else curves.random_metric)[t]  # (K, draws)
    for m, label in enumerate(curves.labels):
        ax.plot(ks, values[m, t], marker="o", ms=3, lw=1.5, label=f"top-k: {label}")
    mean, std = random.mean(1), random.std(1, ddof=1)
    ax.plot(ks, mean, color=RANDOM, lw=1.2, ls="--", label=f"random-k ({random.shape[1]} draws)")
    ax.fill_between(ks, mean - std, mean + std, color=RANDOM, alpha=0.25, lw=0)
    clean = (curves.clean_accuracy if accuracy else curves.clean)[t]
    ax.axhline(clean, color="black", lw=0.8, ls=":", label="clean")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("heads masked (k)")
    ax.set_ylabel("greedy accuracy" if accuracy else "metric")
    if legend:
        ax.legend(fontsize=7, frameon=False)


def faithfulness_plot(curves, task=None, figsize=(8.0, 3.2)) -> HeadlabFigure:
    """One task's curves (``task``: its name; None when the curves hold one task): metric and accuracy."""
    curves = check_curves("faithfulness_plot", curves)
    t = _task_index(curves, task)
    fig = HeadlabFigure(figsize=check_size("figsize", figsize), layout="constrained")
    left, right = fig.subplots(1, 2)
    _draw(left, curves, t, accuracy=False, legend=True)
    _draw(right, curves, t, accuracy=True, legend=False)
    right.set_ylim(-0.03, 1.03)
    fig.suptitle(f"{curves.tasks[t]}: {curves.mode}-masking the top k heads", fontsize=10)
    return fig


def faithfulness_grid(curves, columns: int = 4, panel=(2.6, 2.2)) -> HeadlabFigure:
    """Every task's metric curve, one panel each, ``columns`` per row (``panel``: one panel's (width, height) in
    inches)."""
    curves = check_curves("faithfulness_grid", curves)
    if isinstance(columns, bool) or not isinstance(columns, numbers.Integral) or columns < 1:
        raise InputError(f"columns must be a whole number ≥ 1 (panels per row), got {columns!r}")
    panel = check_size("panel", panel)
    n = len(curves.tasks)
    cols = min(columns, n)
    rows = int(np.ceil(n / cols))
    fig = HeadlabFigure(figsize=(panel[0] * cols, panel[1] * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for t, ax in enumerate(axes):
        if t >= n:
            ax.set_visible(False)
            continue
        _draw(ax, curves, t, accuracy=False, legend=t == 0)
        ax.set_title(curves.tasks[t], fontsize=9)
    fig.suptitle(f"metric with the top k heads {curves.mode}-masked, vs random k", fontsize=10)
    return fig
