"""Head-importance heatmaps in the papers' look: one Layer × Head panel per task, one shared colour bar.

- ``heatmap_grid(scores, ...)`` → ``Figure``; its ``GridView`` (``fig._headlab_view``) updates in place.
- ``GridView(scores, ...)``: the artists (an RGBA image per panel, titles, markers, colour bar, legend) and
  ``update(threshold=..., top_k=..., elbow=..., by=..., normalize=..., tasks=...)``, which changes them in
  place instead of rebuilding the figure.
- What a panel shows is ``viz.display``'s, shared with the explorer's canvas and saved pages: by default the
  signed share s/Σ|s| on a diverging map centred on 0 (red helps, blue hurts), one colour scale per view ending
  at the 99th percentile of |values| (▲▼ beyond), unselected heads greyed, a legend that says in words what the
  colours mean and names every mark.
- ``heatmap(scores, task, ax=None, ...)``: one panel; ``save(fig, path)``: PNG / SVG / PDF by suffix, never over a
  file unless ``overwrite=True``.
- ``always_any_grid(aa)``: per task, the heads selected in every run and in any run (``stats.always_any``);
  ``plot_matrix(df)``: a labelled task × task matrix (``compare.task_overlap``).

Figures are made without pyplot (``HeadlabFigure``: a ``Figure`` with an Agg canvas and ``_repr_png_``),
so a notebook shows a returned figure once, whatever the backend, and redraws leak no pyplot state. The
layout is computed once, in inches, so a redraw runs no layout engine.
"""

from __future__ import annotations

import io
import math
import numbers
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter
from matplotlib.transforms import ScaledTranslation

from ..errors import InputError, InputTypeError
from ..files import output_path, write_file
from ..results import HeadScores, check_k, check_threshold
from . import display
from .display import LEGEND, Selection

__all__ = [
    "GridView",
    "HeadlabFigure",
    "MARGIN",
    "always_any_grid",
    "attention_pattern",
    "compare_scatter",
    "cross_model_plot",
    "grid_shape",
    "heatmap",
    "heatmap_grid",
    "plot_matrix",
    "save",
    "tick_step",
]

SEQUENTIAL = display.MAGNITUDE_CMAP
SIG_MARKER = dict(marker="o", s=18, facecolors="white", edgecolors="black", linewidths=0.8)
CLIP_MARKER = dict(s=16, facecolors="black", edgecolors="white", linewidths=0.6)  # "^" above, "v" below
VERIFIED_MARKER = dict(marker="s", s=34, facecolors="none", edgecolors="black", linewidths=0.9)
SAVE_FORMATS = (".png", ".svg", ".pdf")
# layout, in inches: panel size and the space around panels (tick labels, axis labels, titles, legend)
PANEL_W, PANEL_H = 2.7, 2.5
MARGIN = dict(left=0.6, right=1.45, top=0.35, bottom=0.8, wspace=0.3, hspace=0.45)
CBAR_W, CBAR_PAD = 0.14, 0.25
_KEEP = object()


class HeadlabFigure(Figure):
    """A ``Figure`` on an Agg canvas that renders itself as PNG in Jupyter (no pyplot needed)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.canvas.print_png(buf)
        return buf.getvalue()


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for n panels: one row up to 4 (1→1×1, 3→1×3), then ≤ 4 columns, rows balanced
    (5→2×3, 8→2×4, 9→3×3)."""
    if n <= 4:
        return 1, max(n, 1)
    rows = math.ceil(n / 4)
    return rows, math.ceil(n / rows)


def tick_step(n: int) -> int:
    """Tick spacing for an axis of n layers or heads: every one up to 12, else ~6 ticks (32 → 6)."""
    return 1 if n <= 12 else math.ceil(n / 6)


def _check_scores(scores) -> HeadScores:
    if not isinstance(scores, HeadScores):
        raise InputTypeError(
            f"expected HeadScores (from headlab.score or HeadScores.load), not {type(scores).__name__}"
        )
    return scores


def _check_figsize(figsize):
    if figsize is None:
        return None
    ok = isinstance(figsize, (tuple, list)) and len(figsize) == 2
    ok = ok and all(not isinstance(v, bool) and isinstance(v, numbers.Real) and 0 < v < 1000 for v in figsize)
    if not ok:
        raise InputError(f"figsize must be (width, height) in inches, two positive numbers, got {figsize!r}")
    return tuple(float(v) for v in figsize)


def legend_text(entries: list[str]) -> str:
    """The legend line under a grid: the marks in use, " · "-separated."""
    return "   ·   ".join(entries)


class GridView:
    """A grid of per-task Layer × Head heatmaps whose artists are kept for in-place updates.

    Display: ``scores.normalized(normalize)`` per task, shape (n_layers, n_heads); layer 0 at the top;
    ``normalize`` "share" (signed s/Σ|s|, the default), "fraction" (|s| share), "zscore", "max" or "none".
    Selection (``display.Selection``): ``threshold`` (displayed units), ``top_k`` or ``elbow=True``, ranked
    ``by`` "value" (signed, as ``HeadScores.top``) or "abs"; giving one replaces the others. Heads outside
    the selection are greyed, not hidden: the eye finds the selected heads and still sees the rest.
    The colour scale ends at the ``clip``-th percentile of |displayed values| (99 by default, as in the explorer:
    one or two extreme heads would otherwise leave every other cell white; None: the full range), or at ``vmax``
    (display units) where given; cells beyond it get ▲/▼ and the end ticks read "0.03+".
    ``significant``: (n_tasks, n_layers, n_heads) bool over ``scores.tasks`` (e.g. ``Bootstrap.significant``),
    a dot on each such head. Heads that ``scores.verified`` marks (screen-then-verify) get a square. Where a
    selection is active, marks are drawn on the selected heads only, as in the explorer.

    ``fig`` (an empty Figure) or ``ax`` (one panel; a single task) let you draw into your own figure.
    """

    def __init__(
        self,
        scores,
        threshold=None,
        normalize="share",
        vmax=None,
        top_k=None,
        elbow=False,
        by="value",
        cmap=None,
        ncols=None,
        figsize=None,
        tasks=None,
        fig=None,
        ax=None,
        significant=None,
        clip=99.0,
    ):
        self.scores = _check_scores(scores)
        self.significant = self._check_mask(significant)
        self.opts = dict(
            threshold=None, normalize="share", vmax=None, clip=99.0, top_k=None, elbow=False, by="value", cmap=None
        )
        self._set_opts(
            threshold=threshold, normalize=normalize, vmax=vmax, clip=clip, top_k=top_k, elbow=elbow, by=by, cmap=cmap
        )
        self.tasks = self._check_tasks(tasks)
        if ncols is not None:
            check_k("ncols", ncols)
        if ax is not None and not isinstance(ax, Axes):
            raise InputTypeError(f"ax must be a matplotlib Axes, not {type(ax).__name__}")
        if fig is not None and not isinstance(fig, Figure):
            raise InputTypeError(f"fig must be a matplotlib Figure, not {type(fig).__name__}")
        self.ncols, self.figsize, self._ax = ncols, _check_figsize(figsize), ax
        if ax is not None:
            if len(self.tasks) != 1:
                raise InputError(f"a view drawn into one ax shows one task, got {len(self.tasks)}")
            fig = ax.get_figure(root=True)
        elif fig is None:
            fig = HeadlabFigure()
        self.figure = fig
        fig._headlab_view = self
        self._build()

    # --- options --------------------------------------------------------------------------------

    def _check_tasks(self, tasks) -> list[str]:
        if tasks is None:
            return list(self.scores.tasks)
        try:
            tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        except TypeError:
            raise InputTypeError(f"tasks must be a task name or a list of them, not {type(tasks).__name__}") from None
        unknown = [t for t in tasks if not isinstance(t, str) or t not in self.scores.tasks]
        if unknown:
            raise InputError(f"unknown task(s) {unknown}: these scores have {self.scores.tasks}")
        if not tasks:
            raise InputError("no tasks selected: pass at least one task name")
        if len(set(tasks)) != len(tasks):
            raise InputError(f"a task is named twice in tasks={tasks}: name each once")
        return tasks

    def _check_mask(self, mask) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != self.scores.shape or mask.dtype != bool:
            raise InputError(
                f"significant must be a bool array of shape {self.scores.shape} (tasks, layers, heads), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask

    def _set_opts(self, **changes) -> None:
        changes = {k: v for k, v in changes.items() if v is not _KEEP}
        new = {**self.opts, **changes}
        rules = ("threshold", "top_k", "elbow")
        given = [r for r in rules if r in changes and changes[r] not in (None, False)]
        if len(given) > 1:
            raise InputError(f"give one of threshold, top_k or elbow, not {' and '.join(given)}")
        for r in rules:  # choosing one selection rule replaces the others
            if given and r != given[0]:
                new[r] = False if r == "elbow" else None
        new["normalize"] = display.check_normalize(new["normalize"])
        if new["top_k"] is not None:
            check_k("top_k", new["top_k"], self.scores.model.n_layers * self.scores.model.n_heads)
        if new["threshold"] is not None:
            check_threshold("threshold", new["threshold"])
        display.check_vmax(new["vmax"])
        new["clip"] = display.check_clip(new["clip"])
        display.check_by(new["by"])
        if new["cmap"] is not None:
            display.check_cmap(new["cmap"])
        Selection(new["threshold"], new["top_k"], new["elbow"], new["by"])
        self.opts = new

    # --- data -----------------------------------------------------------------------------------

    def selector(self) -> Selection:
        o = self.opts
        return Selection(o["threshold"], o["top_k"], o["elbow"], o["by"])

    def panels(self) -> list[display.Panel]:
        """What each shown panel displays (``display.task_panels``)."""
        return display.task_panels(self.scores, self.tasks, self.opts["normalize"], self.selector(), self.significant)

    def displayed(self) -> np.ndarray:
        """(n_panels, n_layers, n_heads) displayed values."""
        return np.stack([p.shown for p in self.panels()])

    def scale(self) -> display.Scale:
        """The view's one colour scale, from the panels shown."""
        return self._scale_of([p.shown for p in self.panels()])

    def _scale_of(self, shown: list[np.ndarray]) -> display.Scale:
        o = self.opts
        return display.scale_of(shown, o["normalize"], o["vmax"], clip=o["clip"])

    def selection(self) -> np.ndarray | None:
        """(n_panels, n_layers, n_heads) bool: the heads selected (None: no selection)."""
        panels = self.panels()
        return None if panels[0].selected is None else np.stack([p.selected for p in panels])

    # --- artists --------------------------------------------------------------------------------

    def _shape(self, n: int) -> tuple[int, int]:
        return grid_shape(n) if self.ncols is None else (math.ceil(n / self.ncols), min(self.ncols, n))

    def _size(self, rows, cols) -> tuple[float, float]:
        if self.figsize is not None:
            return self.figsize
        m = MARGIN
        w = m["left"] + cols * PANEL_W + (cols - 1) * m["wspace"] + m["right"]
        return w, m["top"] + rows * PANEL_H + (rows - 1) * m["hspace"] + m["bottom"]

    def _build(self) -> None:
        """Create the panels, images, titles, markers, colour bar and legend (at construction and on regrid)."""
        fig, (L, H) = self.figure, self.scores.shape[1:]
        if self._ax is not None:
            axes, self._grid = [self._ax], (1, 1)
        else:
            rows, cols = self._grid = self._shape(len(self.tasks))
            fig.clear()
            w, h = self._size(rows, cols)
            fig.set_size_inches(w, h)
            m = MARGIN
            panel_w = (w - m["left"] - m["right"] - (cols - 1) * m["wspace"]) / cols
            panel_h = (h - m["top"] - m["bottom"] - (rows - 1) * m["hspace"]) / rows
            if min(panel_w, panel_h) <= 0.2:
                raise InputError(f"figsize {(w, h)} is too small for a {rows} × {cols} grid")
            gs = fig.add_gridspec(
                rows,
                cols,
                left=m["left"] / w,
                right=1 - m["right"] / w,
                top=1 - m["top"] / h,
                bottom=m["bottom"] / h,
                wspace=m["wspace"] / panel_w,
                hspace=m["hspace"] / panel_h,
            )
            axes = [fig.add_subplot(gs[i // cols, i % cols]) for i in range(rows * cols)]
        self.axes = axes
        self.mappable = ScalarMappable(Normalize(), colormaps[display.SIGNED_CMAP])
        self.images, self.titles, self.counts, self.markers = [], [], [], []
        shift = lambda dx, dy: ScaledTranslation(dx / 72, dy / 72, fig.dpi_scale_trans)  # noqa: E731  (points)
        empty = np.empty((0, 2))
        for ax in axes:
            im = ax.imshow(np.zeros((L, H, 4), dtype=np.uint8), interpolation="nearest", aspect="auto")
            ax.xaxis.set_major_locator(FixedLocator(range(0, H, tick_step(H))))
            ax.yaxis.set_major_locator(FixedLocator(range(0, L, tick_step(L))))
            ax.tick_params(labelsize=8, length=2.5)
            ax.set_xlabel("Head", fontsize=9)
            ax.set_ylabel("Layer", fontsize=9)
            # fixed label/title positions: matplotlib would otherwise re-measure every tick label per draw
            ax.xaxis.set_label_coords(0.5, 0, ax.transAxes + shift(0, -20))
            ax.yaxis.set_label_coords(0, 0.5, ax.transAxes + shift(-22, 0))
            self.titles.append(ax.set_title("", loc="left", fontsize=9.5, y=1.0, pad=4))
            self.counts.append(ax.set_title("", loc="right", fontsize=8.5, color="0.3", y=1.0, pad=4))
            self.images.append(im)
            self.markers.append(
                {
                    "significant": ax.scatter(empty[:, 0], empty[:, 1], **SIG_MARKER),
                    "above": ax.scatter(empty[:, 0], empty[:, 1], marker="^", **CLIP_MARKER),
                    "below": ax.scatter(empty[:, 0], empty[:, 1], marker="v", **CLIP_MARKER),
                    "verified": ax.scatter(empty[:, 0], empty[:, 1], **VERIFIED_MARKER),
                }
            )
        if self._ax is not None:
            self.colorbar = fig.colorbar(self.mappable, ax=self._ax)
            self.legend_artist = self._ax.text(0, -0.28, "", transform=self._ax.transAxes, fontsize=7.5, color="0.25")
        else:
            w, h = fig.get_size_inches()
            left = 1 - (MARGIN["right"] - CBAR_PAD) / w
            cax = fig.add_axes((left, MARGIN["bottom"] / h, CBAR_W / w, 1 - (MARGIN["top"] + MARGIN["bottom"]) / h))
            self.colorbar = fig.colorbar(self.mappable, cax=cax)
            self.legend_artist = fig.text(MARGIN["left"] / w, 0.12 / h, "", fontsize=8, color="0.25")
        self.colorbar.ax.tick_params(labelsize=8)
        self.colorbar.formatter = FuncFormatter(lambda v, pos=None: self._scale.tick_text(v))
        self._place()
        self._refresh()

    def _place(self) -> None:
        """Show one panel per task, hide the spare ones; tick labels only on the grid's outer edge."""
        n, cols = len(self.tasks), self._grid[1]
        for i, ax in enumerate(self.axes):
            ax.set_visible(i < n)
            outer_left, outer_bottom = i % cols == 0, i + cols >= n
            ax.tick_params(labelleft=outer_left, labelbottom=outer_bottom)
            ax.yaxis.label.set_visible(outer_left)
            ax.xaxis.label.set_visible(outer_bottom)

    def _refresh(self) -> None:
        """Push the current options into the existing artists."""
        panels = self.panels()
        self._scale = scale = self._scale_of([p.shown for p in panels])
        cmap = self.opts["cmap"]
        for panel, im, title, count, marks in zip(panels, self.images, self.titles, self.counts, self.markers):
            im.set_data(display.shade(panel.shown, scale, panel.selected, cmap))
            title.set_text(panel.title)
            missing = int(np.isnan(panel.shown).sum())
            some = f"{missing} NaN" if 0 < missing < panel.shown.size else ""  # all NaN: the label says so
            count.set_text(" · ".join(filter(None, [panel.label, some])))
            out = display.beyond(panel.shown, scale)
            only = panel.selected if panel.selected is not None else True  # a greyed head shows no mark
            for name, mask in (
                ("significant", panel.significant),
                ("above", out > 0),
                ("below", out < 0),
                ("verified", panel.verified),
            ):
                layer, head = np.nonzero(mask & only) if mask is not None else (np.empty(0), np.empty(0))
                marks[name].set_offsets(np.column_stack([head, layer]))
                marks[name].set_visible(len(layer) > 0)
        self.mappable.set_cmap(display.check_cmap(cmap) if cmap is not None else colormaps[scale.cmap])
        self.mappable.set_clim(scale.lo, scale.hi)
        self.colorbar.set_ticks(scale.ticks())
        self.colorbar.set_label(display.plain_label(self.scores, self.opts["normalize"]), fontsize=9)
        marks = legend_text([LEGEND[k] for k in display.legend_keys(panels, scale)])
        self.legend_artist.set_text("\n".join(filter(None, [display.meaning(self.scores.method, scale.signed), marks])))

    def update(
        self,
        threshold=_KEEP,
        normalize=_KEEP,
        top_k=_KEEP,
        elbow=_KEEP,
        by=_KEEP,
        tasks=_KEEP,
        vmax=_KEEP,
        cmap=_KEEP,
        significant=_KEEP,
        clip=_KEEP,
    ) -> GridView:
        """Change options in place (omitted ones are kept; a threshold, top_k or elbow replaces the other
        two; ``significant=None`` hides the dots, a mask moves them).

        The same Figure, axes and image objects are reused; a task selection that needs a different grid
        (e.g. 8 → 3 panels) rebuilds the panels inside the same Figure, one that fits hides the spare.
        """
        self._set_opts(
            threshold=threshold, normalize=normalize, top_k=top_k, elbow=elbow, by=by, vmax=vmax, cmap=cmap, clip=clip
        )
        if significant is not _KEEP:
            self.significant = self._check_mask(significant)
        if tasks is not _KEEP:
            new = self._check_tasks(tasks)
            if self._ax is not None and len(new) != 1:
                raise InputError(f"a view drawn into one ax shows one task, got {len(new)}")
            fits = self._ax is not None or self._shape(len(new)) == self._grid
            self.tasks = new
            if not fits:
                self._build()
                return self
            self._place()
        self._refresh()
        return self


def heatmap_grid(
    scores,
    threshold=None,
    normalize="share",
    vmax=None,
    top_k=None,
    elbow=False,
    by="value",
    cmap=None,
    ncols=None,
    figsize=None,
    tasks=None,
    significant=None,
    clip=99.0,
) -> Figure:
    """One Layer × Head heatmap per task (8 tasks → 2 × 4) with one shared colour bar and a legend.

    ``normalize``: "share" s/Σ|s| (default: signed, diverging about 0), "fraction" |s| share, "zscore",
    "max" or "none" (see ``HeadScores.normalized``). ``threshold`` / ``top_k`` / ``elbow``: grey the heads
    outside the selection, ranked ``by`` "value" (signed) or "abs" (see ``GridView``). The colour scale ends at
    the ``clip``-th percentile of |values| (99; None: full range) or at ``vmax``; ▲▼ mark the heads beyond.
    ``significant``: (n_tasks, n_layers, n_heads) bool, a dot on each such head (``Bootstrap.significant``).
    Returns the Figure; ``fig._headlab_view`` is its ``GridView`` for in-place ``update(...)``.
    Given ``stats.always_any(...)`` instead of scores, draws ``always_any_grid`` (rows = tasks, columns =
    Always, Any).
    """
    from ..analysis.stats import AlwaysAny

    if isinstance(scores, AlwaysAny):
        return always_any_grid(scores, tasks=tasks)
    return GridView(
        scores,
        threshold=threshold,
        normalize=normalize,
        vmax=vmax,
        top_k=top_k,
        elbow=elbow,
        by=by,
        cmap=cmap,
        ncols=ncols,
        figsize=figsize,
        tasks=tasks,
        significant=significant,
        clip=clip,
    ).figure


def heatmap(
    scores,
    task,
    ax=None,
    threshold=None,
    normalize="share",
    vmax=None,
    top_k=None,
    elbow=False,
    by="value",
    cmap=None,
    figsize=None,
    clip=99.0,
):
    """One task's Layer × Head heatmap with its colour bar, into ``ax`` (or a new figure); returns the Axes.
    ``clip`` / ``vmax``: the colour scale's end, as in ``heatmap_grid``.

    The ``GridView`` is ``ax.figure._headlab_view`` (the last one drawn into that figure).
    """
    scores = _check_scores(scores)
    opts = dict(
        threshold=threshold, normalize=normalize, vmax=vmax, clip=clip, top_k=top_k, elbow=elbow, by=by, cmap=cmap
    )
    if ax is None:
        return GridView(scores, figsize=figsize, tasks=[task], **opts).axes[0]
    GridView(scores, tasks=[task], ax=ax, **opts)
    return ax


def always_any_grid(aa, tasks=None) -> Figure:
    """The stability figure for ``stats.always_any(...)``: one row per task, columns "Always" (heads selected
    in every run) and "Any" (in at least one), each a Layer × Head panel coloured by selection frequency
    (grey: not in that set), counts in the titles, one shared colour bar. Returns the Figure."""
    from ..analysis.stats import AlwaysAny

    if not isinstance(aa, AlwaysAny):
        raise InputTypeError(f"always_any_grid() takes stats.always_any(...), not {type(aa).__name__}")
    tasks = list(aa.tasks) if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in aa.tasks]
    if unknown or not tasks:
        raise InputError(f"unknown or no task(s) {unknown}: choose from {aa.tasks}")
    L, H = aa.freq.shape[1:]
    fig = HeadlabFigure(figsize=(2 * PANEL_W + 1.4, 0.5 + len(tasks) * PANEL_H), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False, sharex=True, sharey=True)
    cmap = colormaps[SEQUENTIAL].with_extremes(bad="0.9")
    for row, task in zip(axes, tasks):
        t = aa.tasks.index(task)
        for ax, name, keep in zip(row, ("Always", "Any"), (aa.always[t], aa.any[t])):
            im = ax.imshow(
                np.ma.masked_where(~keep, aa.freq[t]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto"
            )
            ax.set_title(f"{name} ({int(keep.sum())})", fontsize=9.5)
            ax.xaxis.set_major_locator(FixedLocator(range(0, H, tick_step(H))))
            ax.yaxis.set_major_locator(FixedLocator(range(0, L, tick_step(L))))
            ax.tick_params(labelsize=8, length=2.5)
        row[0].set_ylabel(f"{task}\nLayer", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("Head", fontsize=9)
    fig.colorbar(im, ax=axes, label=f"Selected in fraction of {aa.n_runs} runs", shrink=0.8)
    return fig


def plot_matrix(df, title=None, label=None, vmin=None, vmax=None) -> Figure:
    """A row × column DataFrame (e.g. ``compare.task_overlap``) as a labelled heatmap with each value
    written in its cell; ``vmin`` / ``vmax`` fix the colour scale. Returns the Figure."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or df.empty:
        raise InputTypeError(
            f"plot_matrix() takes a non-empty pandas DataFrame (e.g. compare.task_overlap), not {df!r:.60}"
        )
    for name, v in (("vmin", vmin), ("vmax", vmax)):
        if v is not None:
            check_threshold(name, v)
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise InputError(f"vmin ({vmin}) must be below vmax ({vmax})")
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("plot_matrix() needs a numeric DataFrame: every cell a number") from None
    n_rows, n_cols = values.shape
    fig = HeadlabFigure(figsize=(2.2 + 0.6 * n_cols, 1.6 + 0.45 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap=SEQUENTIAL, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(n_cols), [str(c) for c in df.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), [str(r) for r in df.index], fontsize=8)
    bright = im.norm(values) > 0.6  # dark text on the light end of viridis
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if bright[r, c] else "white")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    return fig


def save(fig, path, overwrite: bool = False) -> Path:
    """Write ``fig`` to ``path`` as PNG (150 dpi), SVG or PDF by suffix, atomically, creating parent folders.
    An existing file is kept unless ``overwrite=True``; the path rules are ``headlab.files``'s."""
    if not isinstance(fig, Figure):
        raise InputTypeError(f"save() takes a matplotlib Figure (e.g. heatmap_grid(...)), not {type(fig).__name__}")
    path = output_path(path, what="plot.save()", suffixes=SAVE_FORMATS, overwrite=overwrite)
    buf = io.BytesIO()
    kind = path.suffix.lower()
    fig.savefig(buf, format=kind[1:], dpi=150 if kind == ".png" else "figure", facecolor="white")
    return write_file(path, buf.getvalue(), overwrite=overwrite, what="plot.save()")


def attention_pattern(pattern, tokens, title=None, ax=None):
    """One head's attention pattern (query × key, shape (n, n) for n tokens) with the tokens as tick labels
    on both axes (spaces shown as "␣", newlines as "\\n"); into ``ax`` or a new figure. Returns the Figure."""
    pattern, tokens = np.asarray(pattern), [str(t).replace(" ", "␣").replace("\n", "\\n") for t in tokens]
    if pattern.shape != (len(tokens), len(tokens)):
        raise InputError(f"pattern has shape {pattern.shape}, expected ({len(tokens)}, {len(tokens)}) for the tokens")
    if ax is None:
        side = min(7.0, 2.0 + 0.2 * len(tokens))
        ax = HeadlabFigure(figsize=(side + 0.9, side), layout="constrained").add_subplot()
    fig = ax.get_figure(root=True)
    im = ax.imshow(pattern, cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    ax.set_xlabel("Key")
    ax.set_ylabel("Query")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="Attention", shrink=0.8)
    return fig


def compare_scatter(a: HeadScores, b: HeadScores, task=None, labels=None):
    """Scatter of each head's score in ``a`` (x) vs ``b`` (y), one panel per task (``task``: one name or a
    list; default the tasks both score), Spearman ρ in each title. Returns the Figure."""
    from scipy.stats import spearmanr

    from ..analysis.compare import common_tasks

    _check_scores(a), _check_scores(b)
    tasks = common_tasks(a, b) if task is None else [task] if isinstance(task, str) else list(task)
    if a.values.shape[1:] != b.values.shape[1:]:
        raise InputError(f"maps differ in shape {a.values.shape[1:]} vs {b.values.shape[1:]}: compare one model")
    missing = [t for t in tasks if t not in a.tasks or t not in b.tasks]
    if missing or not tasks:
        raise InputError(f"task(s) {missing} are not scored by both maps: choose from {common_tasks(a, b)}")
    xlabel, ylabel = labels or (f"{a.model.name} · {a.method}", f"{b.model.name} · {b.method}")
    rows, cols = grid_shape(len(tasks))
    fig = HeadlabFigure(figsize=(0.6 + 2.8 * cols, 0.4 + 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, tasks):
        x, y = a[name].ravel(), b[name].ravel()
        ax.scatter(x, y, s=8, alpha=0.6, linewidths=0)
        ax.set_title(f"{name}  ρ = {spearmanr(x, y).statistic:.2f}", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    return fig


def cross_model_plot(a: HeadScores, b: HeadScores, bins: int = 10, labels=None):
    """Per task both score, one panel: the share of |score| over relative depth for ``a`` and ``b``
    (``analysis.compare.relative_depth``), ρ in the title. Returns the Figure."""
    from ..analysis.compare import cross_model, relative_depth

    table = cross_model(a, b, bins)
    pa, pb = relative_depth(a, bins), relative_depth(b, bins)
    la, lb = labels or (f"{a.model.name} ({a.model.n_layers} layers)", f"{b.model.name} ({b.model.n_layers} layers)")
    rows, cols = grid_shape(len(table))
    fig = HeadlabFigure(figsize=(0.6 + 2.8 * cols, 0.6 + 2.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (task, row) in zip(axes, table.iterrows()):
        for profile, label in ((pa, la), (pb, lb)):
            ax.plot(profile.loc[task].index, profile.loc[task]["share"], marker="o", markersize=3, label=label)
        rho = "n/a" if math.isnan(row["rho_share"]) else f"{row['rho_share']:.2f}"
        ax.set_title(f"{task}  ρ = {rho}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("Relative depth", fontsize=8)
        ax.set_ylabel("Share of |score|", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(table) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    return fig
