"""Head-importance heatmaps in the papers' look: one Layer × Head panel per task, one shared colour bar.

- ``heatmap_grid(scores, ...)`` → ``Figure``; its ``GridView`` (``fig._headlab_view``) updates in place.
- ``GridView(scores, ...)``: the artists (an ``AxesImage`` per panel, titles, colour bar) and
  ``update(threshold=..., normalize=..., top_k=..., tasks=...)``, which changes them with
  ``set_data`` / ``set_clim`` / ``set_alpha`` / ``set_text`` instead of rebuilding the figure;
  ``significant=`` (e.g. ``stats.bootstrap(scores).significant``) dots the heads whose CI excludes 0.
- ``heatmap(scores, task, ax=None, ...)``: one panel; ``save(fig, path)``: PNG / SVG / PDF by suffix.
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
import struct
import zlib
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rcParams
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator
from matplotlib.transforms import ScaledTranslation

from ..results import NORMALIZATIONS, HeadScores, check_k, check_threshold

SEQUENTIAL, DIVERGING = "viridis", "RdBu_r"
DIM_ALPHA = 0.25  # opacity of heads outside the selection
MISSING = "0.85"  # colour of a missing (NaN) head: light grey, the rest of its panel drawn as usual
MARKER = dict(marker="o", s=7, facecolors="white", edgecolors="black", linewidths=0.5)  # significant heads
COLORBAR_LABEL = "Head importance"
SAVE_FORMATS = (".png", ".svg", ".pdf")
# layout, in inches: panel size and the space around panels (tick labels, axis labels, titles)
PANEL_W, PANEL_H = 2.7, 2.5
MARGIN = dict(left=0.6, right=1.35, top=0.35, bottom=0.55, wspace=0.3, hspace=0.45)
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


def png_bytes(rgba: np.ndarray) -> bytes:
    """(height, width, 4) uint8 → PNG bytes, unfiltered rows at zlib level 1: ≈ 3× faster than PIL's
    adaptive filters for a mostly-white figure, for a somewhat larger file (what a live redraw wants)."""
    h, w, _ = rgba.shape
    rows = np.empty((h, 1 + 4 * w), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "None" for every scanline
    rows[:, 1:] = rgba.reshape(h, 4 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


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
        raise TypeError(f"expected HeadScores (from headlab.score or HeadScores.load), not {type(scores).__name__}")
    return scores


def _with_missing(cmap) -> Colormap:
    """The colour map (a name or a ``Colormap``) with NaN drawn in ``MISSING``; one line for an unknown one."""
    if isinstance(cmap, str):
        if cmap not in colormaps:
            raise ValueError(f"unknown cmap {cmap!r}: use a matplotlib colour map name such as 'viridis' or 'magma'")
        cmap = colormaps[cmap]
    if not isinstance(cmap, Colormap):
        raise TypeError(f"cmap must be a colour map name or a matplotlib Colormap, not {type(cmap).__name__}")
    return cmap.with_extremes(bad=MISSING)


def _check_figsize(figsize):
    if figsize is None:
        return None
    ok = isinstance(figsize, (tuple, list)) and len(figsize) == 2
    ok = ok and all(not isinstance(v, bool) and isinstance(v, numbers.Real) and 0 < v < 1000 for v in figsize)
    if not ok:
        raise ValueError(f"figsize must be (width, height) in inches, two positive numbers, got {figsize!r}")
    return tuple(float(v) for v in figsize)


class GridView:
    """A grid of per-task Layer × Head heatmaps whose artists are kept for in-place updates.

    Display: ``scores.normalized(normalize)`` per task, shape (n_layers, n_heads); layer 0 at the top.
    Selection: ``threshold`` keeps heads whose displayed value is ≥ it (|value| for signed displays);
    ``top_k`` keeps each task's k best by that same key. Heads outside the selection are *dimmed*
    (their image alpha drops to ``DIM_ALPHA``) rather than hidden: the eye finds the selected heads and
    still sees the rest of the map. ``vmax`` (display units) clips the colour scale; the top colour-bar
    tick then reads e.g. "0.0040+". Signed displays (``signed=True``, or None and a normalisation other
    than "fraction" with negative values) use ``RdBu_r`` with a clim symmetric about 0.
    ``significant``: (n_tasks, n_layers, n_heads) bool over ``scores.tasks`` (e.g. ``Bootstrap.significant``),
    drawn as a dot on each such head (None: no dots).

    ``fig`` (an empty Figure) or ``ax`` (one panel; a single task) let you draw into your own figure.
    """

    def __init__(
        self,
        scores,
        threshold=None,
        normalize="fraction",
        vmax=None,
        top_k=None,
        signed=None,
        cmap=None,
        ncols=None,
        figsize=None,
        tasks=None,
        fig=None,
        ax=None,
        significant=None,
    ):
        self.scores = _check_scores(scores)
        self.significant = self._check_mask(significant)
        self.opts = dict(threshold=None, normalize="fraction", vmax=None, top_k=None, signed=None, cmap=None)
        self._set_opts(threshold=threshold, normalize=normalize, vmax=vmax, top_k=top_k, signed=signed, cmap=cmap)
        self.tasks = self._check_tasks(tasks)
        if ncols is not None:
            check_k("ncols", ncols)
        if ax is not None and not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes, not {type(ax).__name__}")
        if fig is not None and not isinstance(fig, Figure):
            raise TypeError(f"fig must be a matplotlib Figure, not {type(fig).__name__}")
        self.ncols, self.figsize, self._ax = ncols, _check_figsize(figsize), ax
        if ax is not None:
            if len(self.tasks) != 1:
                raise ValueError(f"a view drawn into one ax shows one task, got {len(self.tasks)}")
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
            raise TypeError(f"tasks must be a task name or a list of them, not {type(tasks).__name__}") from None
        unknown = [t for t in tasks if not isinstance(t, str) or t not in self.scores.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}: these scores have {self.scores.tasks}")
        if not tasks:
            raise ValueError("no tasks selected: pass at least one task name")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"a task is named twice in tasks={tasks}: name each once")
        return tasks

    def _check_mask(self, mask) -> np.ndarray | None:
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != self.scores.shape or mask.dtype != bool:
            raise ValueError(
                f"significant must be a bool array of shape {self.scores.shape} (tasks, layers, heads), "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask

    def _set_opts(self, **changes) -> None:
        new = {**self.opts, **{k: v for k, v in changes.items() if v is not _KEEP}}
        if changes.get("threshold", _KEEP) is not _KEEP and changes.get("top_k", _KEEP) is _KEEP:
            new["top_k"] = None  # choosing a threshold replaces a top-k selection ...
        if changes.get("top_k", _KEEP) is not _KEEP and changes.get("threshold", _KEEP) is _KEEP:
            new["threshold"] = None  # ... and vice versa
        if new["threshold"] is not None and new["top_k"] is not None:
            raise ValueError("give threshold or top_k, not both")
        if not isinstance(new["normalize"], str) or new["normalize"] not in NORMALIZATIONS:
            raise ValueError(f"unknown normalize {new['normalize']!r}: choose from {NORMALIZATIONS}")
        if new["top_k"] is not None:
            check_k("top_k", new["top_k"], self.scores.model.n_layers * self.scores.model.n_heads)
        if new["threshold"] is not None:
            check_threshold("threshold", new["threshold"])
        if new["vmax"] is not None and not check_threshold("vmax", new["vmax"]) > 0:
            raise ValueError(f"vmax must be a positive number, got {new['vmax']!r}")
        if new["signed"] is not None and not isinstance(new["signed"], (bool, np.bool_)):
            raise ValueError(f"signed must be True, False or None (automatic), got {new['signed']!r}")
        if new["cmap"] is not None:
            _with_missing(new["cmap"])
        self.opts = new

    # --- data -----------------------------------------------------------------------------------

    def displayed(self) -> tuple[np.ndarray, bool]:
        """(n_panels, n_layers, n_heads) displayed values and whether the display is signed."""
        idx = [self.scores.tasks.index(t) for t in self.tasks]
        kind = self.opts["normalize"]
        disp = self.scores.normalized(kind)[idx]
        signed = self.opts["signed"]
        if signed is None:
            signed = kind != "fraction" and bool((disp < 0).any())
        if signed and kind == "fraction":
            disp = disp * np.sign(self.scores.values[idx])
        return disp, bool(signed)

    def key(self) -> np.ndarray:
        """(n_panels, n_layers, n_heads) what threshold and top_k compare: the displayed value, or its
        magnitude for signed displays (a strongly negative head matters too)."""
        disp, signed = self.displayed()
        return np.abs(disp) if signed else disp

    def selection(self) -> np.ndarray | None:
        """(n_panels, n_layers, n_heads) bool: the heads passing threshold / top_k (None: no selection)."""
        key = self.key()
        if self.opts["threshold"] is not None:
            return key >= self.opts["threshold"]
        if self.opts["top_k"] is not None:
            flat = key.reshape(len(key), -1)
            best = np.argsort(-flat, axis=1, kind="stable")[:, : self.opts["top_k"]]
            keep = np.zeros_like(flat, dtype=bool)
            np.put_along_axis(keep, best, True, axis=1)
            return keep.reshape(key.shape) & ~np.isnan(key)  # a missing head is never selected
        return None

    def _clim(self, disp, signed) -> tuple[float, float, bool]:
        """(vmin, vmax, clipped) shared by every panel."""
        vmax = self.opts["vmax"]
        finite = disp[np.isfinite(disp)]  # missing (NaN) heads take no part in the colour scale
        finite = finite if finite.size else np.zeros(1)
        if signed:
            top = float(np.abs(finite).max()) or 1.0
            lim = vmax or top
            return -lim, lim, top > lim * (1 + 1e-9)
        lo, top = min(float(finite.min()), 0.0), float(finite.max())
        hi = vmax or (top if top > lo else lo + 1.0)
        return lo, hi, top > hi * (1 + 1e-9)

    def selection_label(self, keep: np.ndarray | None, missing: int = 0) -> str:
        """A panel's selection size, drawn right of its task name: "12 ≥ thr", "top 10", or "" (none), and
        how many heads are missing (NaN, drawn grey): "top 10 · 1 NaN"."""
        text = ""
        if self.opts["top_k"] is not None:
            text = f"top {self.opts['top_k']}"
        elif keep is not None:
            text = f"{int(keep.sum())} ≥ thr"
        if missing:
            text = f"{text} · {missing} NaN" if text else f"{missing} NaN"
        return text

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
        """Create the panels, images, titles and colour bar (used at construction and on regrid)."""
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
                raise ValueError(f"figsize {(w, h)} is too small for a {rows} × {cols} grid")
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
        self.norm = Normalize()
        self.images, self.titles, self.counts, self.markers = [], [], [], []
        shift = lambda dx, dy: ScaledTranslation(dx / 72, dy / 72, fig.dpi_scale_trans)  # noqa: E731  (points)
        for ax in axes:
            im = ax.imshow(
                np.zeros((L, H)), norm=self.norm, cmap=_with_missing(SEQUENTIAL), interpolation="nearest", aspect="auto"
            )
            ax.xaxis.set_major_locator(FixedLocator(range(0, H, tick_step(H))))
            ax.yaxis.set_major_locator(FixedLocator(range(0, L, tick_step(L))))
            ax.tick_params(labelsize=8, length=2.5)
            ax.set_xlabel("Head", fontsize=9)
            ax.set_ylabel("Layer", fontsize=9)
            # fixed label/title positions: matplotlib would otherwise re-measure every tick label per draw
            ax.xaxis.set_label_coords(0.5, 0, ax.transAxes + shift(0, -20))
            ax.yaxis.set_label_coords(0, 0.5, ax.transAxes + shift(-22, 0))
            # task name left, selection size right: only the short right-hand text changes on a redraw
            self.titles.append(ax.set_title("", loc="left", fontsize=9.5, y=1.0, pad=4))
            self.counts.append(ax.set_title("", loc="right", fontsize=8.5, color="0.3", y=1.0, pad=4))
            self.images.append(im)
            self.markers.append(ax.scatter(np.empty(0), np.empty(0), **MARKER))  # offsets (head, layer)
        if self._ax is not None:
            self.colorbar = fig.colorbar(self.images[0], ax=self._ax)
        else:
            w, h = fig.get_size_inches()
            left = 1 - (MARGIN["right"] - CBAR_PAD) / w
            cax = fig.add_axes((left, MARGIN["bottom"] / h, CBAR_W / w, 1 - (MARGIN["top"] + MARGIN["bottom"]) / h))
            self.colorbar = fig.colorbar(self.images[0], cax=cax)
        self.colorbar.set_label(COLORBAR_LABEL, fontsize=9)
        self.colorbar.ax.tick_params(labelsize=8)
        self.colorbar.formatter = FuncFormatter(self._format_tick)
        self._background = None
        self._place()
        self._refresh()

    def _format_tick(self, value, pos=None) -> str:
        lo, hi = self.norm.vmin, self.norm.vmax
        digits = max(0, 1 - math.floor(math.log10(max(abs(lo), abs(hi)))))
        text = f"{value:.{digits}f}"
        if rcParams["axes.unicode_minus"]:
            text = text.replace("-", "\N{MINUS SIGN}")
        return text + "+" if self._clipped and math.isclose(value, hi, rel_tol=1e-9) else text

    def _place(self) -> None:
        """Show one panel per task, hide the spare ones; tick labels only on the grid's outer edge."""
        n, cols = len(self.tasks), self._grid[1]
        self._background = None
        for i, ax in enumerate(self.axes):
            ax.set_visible(i < n)
            outer_left, outer_bottom = i % cols == 0, i + cols >= n
            ax.tick_params(labelleft=outer_left, labelbottom=outer_bottom)
            ax.yaxis.label.set_visible(outer_left)
            ax.xaxis.label.set_visible(outer_bottom)

    def _refresh(self) -> None:
        """Push the current options into the existing artists."""
        disp, signed = self.displayed()
        keep = self.selection()
        lo, hi, self._clipped = self._clim(disp, signed)
        cmap = _with_missing(self.opts["cmap"] or (DIVERGING if signed else SEQUENTIAL))
        idx = [self.scores.tasks.index(t) for t in self.tasks]
        for i, (im, title, count, dots) in enumerate(
            zip(self.images[: len(self.tasks)], self.titles, self.counts, self.markers)
        ):
            im.set_data(disp[i])
            dots.set_visible(self.significant is not None)
            if self.significant is not None:
                layer, head = np.nonzero(self.significant[idx[i]])
                dots.set_offsets(np.column_stack([head, layer]))
            if im.get_cmap().name != cmap.name:
                im.set_cmap(cmap)
            # always an array: matplotlib cannot go back from array alpha to a scalar one
            im.set_alpha(np.where(keep[i], 1.0, DIM_ALPHA) if keep is not None else np.ones(disp[i].shape))
            if title.get_text() != self.tasks[i]:  # names are part of the cached background
                title.set_text(self.tasks[i])
                self._background = None
            count.set_text(self.selection_label(None if keep is None else keep[i], int(np.isnan(disp[i]).sum())))
        static = (lo, hi, self._clipped, cmap.name)
        if static != getattr(self, "_static", None):  # the colour bar changes: the cached background too
            self._static, self._background = static, None
            self.images[0].set_clim(lo, hi)  # one Normalize is shared: every panel and the colour bar follow
            ticks = MaxNLocator(nbins=5, symmetric=signed).tick_values(lo, hi)
            ticks = ticks[(ticks >= lo) & (ticks <= hi)]
            if self._clipped:  # make the clip value itself the top tick
                ticks = np.append(ticks[ticks < hi - 0.5 * np.diff(ticks[:2]).sum()], hi)
            self.colorbar.set_ticks(ticks)

    def render_png(self) -> bytes:
        """The figure as PNG bytes, redrawing only what ``update`` changes (images, significance dots,
        selection sizes) over a cached background of axes, ticks, labels, task names and colour bar
        (blitting). Same pixels as a full draw."""
        canvas = self.figure.canvas
        if not isinstance(canvas, FigureCanvasAgg):
            raise TypeError("render_png() needs a figure on an Agg canvas (heatmap_grid builds one)")
        dynamic = [a for trio in zip(self.images, self.markers, self.counts) for a in trio]
        if self._background is None:
            shown = [a.get_visible() for a in dynamic]
            for a in dynamic:
                a.set_visible(False)
            try:
                canvas.draw()
                self._background = canvas.copy_from_bbox(self.figure.bbox)
            finally:
                for a, visible in zip(dynamic, shown):
                    a.set_visible(visible)
        canvas.restore_region(self._background)
        for ax, im, dots, count in zip(self.axes, self.images, self.markers, self.counts):
            if ax.get_visible():
                ax.draw_artist(im)
                if dots.get_visible():
                    ax.draw_artist(dots)
                for spine in ax.spines.values():  # the frame sits above the image, as in a full draw
                    ax.draw_artist(spine)
                ax.draw_artist(count)
        return png_bytes(np.asarray(canvas.buffer_rgba()))

    def update(
        self,
        threshold=_KEEP,
        normalize=_KEEP,
        top_k=_KEEP,
        tasks=_KEEP,
        vmax=_KEEP,
        signed=_KEEP,
        cmap=_KEEP,
        significant=_KEEP,
    ) -> GridView:
        """Change options in place (omitted ones are kept; a threshold clears top_k and vice versa;
        ``significant=None`` hides the dots, a mask moves them).

        The same Figure, axes and AxesImage objects are reused; a task selection that needs a different
        grid (e.g. 8 → 3 panels) rebuilds the panels inside the same Figure, one that fits hides the spare.
        """
        self._set_opts(threshold=threshold, normalize=normalize, top_k=top_k, vmax=vmax, signed=signed, cmap=cmap)
        if significant is not _KEEP:
            self.significant = self._check_mask(significant)
        if tasks is not _KEEP:
            new = self._check_tasks(tasks)
            if self._ax is not None and len(new) != 1:
                raise ValueError(f"a view drawn into one ax shows one task, got {len(new)}")
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
    normalize="fraction",
    vmax=None,
    top_k=None,
    signed=None,
    cmap=None,
    ncols=None,
    figsize=None,
    tasks=None,
    significant=None,
) -> Figure:
    """One Layer × Head heatmap per task (8 tasks → 2 × 4) with one shared "Head importance" colour bar.

    ``normalize``: "fraction" |s|/Σ|s| (default), "zscore", "max" or "none" (see ``HeadScores.normalized``).
    ``threshold`` / ``top_k``: dim the heads outside the selection (see ``GridView``); ``vmax`` clips.
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
        signed=signed,
        cmap=cmap,
        ncols=ncols,
        figsize=figsize,
        tasks=tasks,
        significant=significant,
    ).figure


def heatmap(
    scores,
    task,
    ax=None,
    threshold=None,
    normalize="fraction",
    vmax=None,
    top_k=None,
    signed=None,
    cmap=None,
    figsize=None,
):
    """One task's Layer × Head heatmap with its colour bar, into ``ax`` (or a new figure); returns the Axes.

    The ``GridView`` is ``ax.figure._headlab_view`` (the last one drawn into that figure).
    """
    scores = _check_scores(scores)
    if ax is None:
        view = GridView(
            scores,
            threshold=threshold,
            normalize=normalize,
            vmax=vmax,
            top_k=top_k,
            signed=signed,
            cmap=cmap,
            figsize=figsize,
            tasks=[task],
        )
        return view.axes[0]
    GridView(
        scores,
        threshold=threshold,
        normalize=normalize,
        vmax=vmax,
        top_k=top_k,
        signed=signed,
        cmap=cmap,
        tasks=[task],
        ax=ax,
    )
    return ax


def always_any_grid(aa, tasks=None) -> Figure:
    """The stability figure for ``stats.always_any(...)``: one row per task, columns "Always" (heads selected
    in every run) and "Any" (in at least one), each a Layer × Head panel coloured by selection frequency
    (grey: not in that set), counts in the titles, one shared colour bar. Returns the Figure."""
    from ..analysis.stats import AlwaysAny

    if not isinstance(aa, AlwaysAny):
        raise TypeError(f"always_any_grid() takes stats.always_any(...), not {type(aa).__name__}")
    tasks = list(aa.tasks) if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in tasks if t not in aa.tasks]
    if unknown or not tasks:
        raise ValueError(f"unknown or no task(s) {unknown}: choose from {aa.tasks}")
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
        raise TypeError(f"plot_matrix() takes a non-empty pandas DataFrame (e.g. compare.task_overlap), not {df!r:.60}")
    for name, v in (("vmin", vmin), ("vmax", vmax)):
        if v is not None:
            check_threshold(name, v)
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ValueError(f"vmin ({vmin}) must be below vmax ({vmax})")
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("plot_matrix() needs a numeric DataFrame: every cell a number") from None
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


def save(fig, path) -> Path:
    """Write ``fig`` to ``path`` as PNG (150 dpi), SVG or PDF by suffix, creating parent folders."""
    if not isinstance(fig, Figure):
        raise TypeError(f"save() takes a matplotlib Figure (e.g. heatmap_grid(...)), not {type(fig).__name__}")
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ValueError(f"save() needs a file path ending in {SAVE_FORMATS}, got {path!r}")
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"cannot save as {path.suffix or 'a file without suffix'!r}: use one of {SAVE_FORMATS}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150 if path.suffix.lower() == ".png" else "figure", facecolor="white")
    return path


def attention_pattern(pattern, tokens, title=None, ax=None):
    """One head's attention pattern (query × key, shape (n, n) for n tokens) with the tokens as tick labels
    on both axes (spaces shown as "␣", newlines as "\\n"); into ``ax`` or a new figure. Returns the Figure."""
    pattern, tokens = np.asarray(pattern), [str(t).replace(" ", "␣").replace("\n", "\\n") for t in tokens]
    if pattern.shape != (len(tokens), len(tokens)):
        raise ValueError(f"pattern has shape {pattern.shape}, expected ({len(tokens)}, {len(tokens)}) for the tokens")
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
        raise ValueError(f"maps differ in shape {a.values.shape[1:]} vs {b.values.shape[1:]}: compare one model")
    missing = [t for t in tasks if t not in a.tasks or t not in b.tasks]
    if missing or not tasks:
        raise ValueError(f"task(s) {missing} are not scored by both maps: choose from {common_tasks(a, b)}")
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
