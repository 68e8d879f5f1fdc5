"""From the state and the store of computed maps to what the grid draws and the status line says.

``render(state, store, significant, version)`` is the explorer's only way to the screen: it reads the
``ViewState`` and the maps in the store, never a control, and returns a ``Drawn`` — the ``HeadGrid``'s state,
which (map, task) each panel shows (for clicks), and the status line in words. An impossible view (no task
ticked, k beyond the map) raises ``ValueError`` with a sentence; the explorer shows it as the message line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from .. import canvas, display
from .state import ViewState

__all__ = ["CLIP_OPTIONS", "render", "selection", "threshold_range"]

CLIP_OPTIONS = (
    ("clip at 99th pct", 99.0),
    ("clip at 99.5th pct", 99.5),
    ("clip at 95th pct", 95.0),
    ("full range", 0.0),
)


def map_name(map_id) -> str:
    """ "attribution · resample on smollm2" for the map whose id is (model, method label)."""
    return f"{map_id[1]} on {map_id[0]}" if map_id else ""


@dataclass
class Drawn:
    """What one redraw sends: ``grid`` (``canvas.state``), ``panel_maps`` (per panel: (map id, task); a map id
    is (model, method label)), ``status`` (one line of words) and ``range`` ((lo, hi) of the threshold slider, in
    displayed units)."""

    grid: dict
    panel_maps: list
    status: str
    range: tuple[float, float]


def selection(state: ViewState, n_heads: int) -> display.Selection:
    """The selection rule of the state (``n_heads``: L × H of the map, the bound of k)."""
    by = state.by
    if state.select == "threshold":
        return display.Selection(threshold=state.threshold, by=by)
    if state.select == "top_k":
        if not 1 <= state.k <= n_heads:
            raise InputError(f"k must be between 1 and {n_heads} (heads in the map), got {state.k}")
        return display.Selection(top_k=state.k, by=by)
    if state.select == "elbow":
        return display.Selection(elbow=True, by=by)
    return display.Selection(by=by)


def threshold_range(scores, state: ViewState) -> tuple[float, float]:
    """(lo, hi) > 0 of what the threshold compares over the tasks shown (|values| by |s|): the slider's ends."""
    idx = [scores.tasks.index(t) for t in state.tasks] or list(range(len(scores.tasks)))
    key = scores.normalized(state.normalize)[idx]
    key = np.abs(key) if state.by == "abs" else key
    positive = key[np.isfinite(key) & (key > 0)]
    hi = float(positive.max()) if positive.size else 1.0
    lo = max(float(positive.min()) if positive.size else hi * 1e-4, hi * 1e-4)
    return (lo if lo < hi else hi / 10), hi


def render(state: ViewState, store: dict, significant, version: int) -> Drawn:
    """The view of ``state`` over the maps in ``store`` ((model, method) → HeadScores); ``significant(scores)``
    gives the CI mask when the CI dots are on."""
    a = store[state.a]
    tasks = list(state.tasks)
    if not tasks:
        raise InputError("no task selected: tick at least one task (or press “all”)")
    n_heads = a.shape[1] * a.shape[2]
    sel = selection(state, n_heads)
    sig = significant(a) if state.ci else None
    b = store.get(state.compare) if state.compare else None
    differs = "model" if state.compare and state.compare[0] != state.model else "method"
    tag = lambda key: key[0] if differs == "model" else key[1]  # noqa: E731
    if b is not None and state.mode == "difference":
        panels = display.difference_panels(a, b, tasks, state.normalize, sel)
        panel_maps = [(state.a, t) for t in tasks]
        pair = False
    elif b is not None:
        mine = display.task_panels(a, tasks, state.normalize, sel, sig, suffix=f" · A: {tag(state.a)}")
        theirs = display.task_panels(b, tasks, state.normalize, sel, None, suffix=f" · B: {tag(state.compare)}")
        panels = [p for two in zip(mine, theirs) for p in two]
        panel_maps = [s for t in tasks for s in ((state.a, t), (state.compare, t))]
        pair = True
    else:
        panels = display.task_panels(a, tasks, state.normalize, sel, sig)
        panel_maps = [(state.a, t) for t in tasks]
        pair = False
    difference = b is not None and state.mode == "difference"
    negative = difference or any(bool((np.nan_to_num(m.values) < 0).any()) for m in (a, b) if m is not None)
    scale = display.scale_of([p.shown for p in panels], state.normalize, signed=negative, clip=state.clip)
    grid = canvas.state(
        panels,
        scale,
        unit=display.unit(a, state.normalize),
        raw_unit="difference, " + display.unit(a, state.normalize) if difference else display.unit(a, "none"),
        label=display.plain_label(a, state.normalize, difference=difference),
        meaning=display.meaning(a.method, scale.signed, difference=difference),
        cols=4,
        pair=pair,
        version=version,
        marks=state.marks,
    )
    status = status_line(state, a, b, sel, scale)
    return Drawn(grid, panel_maps, status, threshold_range(a, state))


def status_line(state: ViewState, a, b, sel: display.Selection, scale: display.Scale) -> str:
    """One line: the maps shown, tasks, shape, scale and selection (the colour bar says what colours measure)."""
    L, H = a.shape[1:]
    if b is not None:
        how = "A − B" if state.mode == "difference" else "side by side"
        maps = f"A: {map_name(state.a)} | B: {map_name(state.compare)} ({how})"
    else:
        maps = map_name(state.a)
    rule = {"none": "no selection", "threshold": "threshold", "top_k": f"top {state.k}", "elbow": "elbow"}[state.select]
    if state.select != "none":
        rule += " by |A − B|" if b is not None and state.mode == "difference" else f" by {display.BY[sel.by]}"
    parts = [
        maps,
        f"{len(state.tasks)} of {len(a.tasks)} tasks shown",
        f"{L} layers × {H} heads",
        f"clipped at the {state.clip:g}th percentile" if scale.clipped else "full scale",
        rule,
    ]
    return " · ".join(parts)
