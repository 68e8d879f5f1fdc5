"""What a head map shows, computed once for the static grid, the explorer's canvas and saved HTML pages.

A *view* is a list of panels, each a Layer × Head array of displayed values (one panel per task; two per
task, or their difference, when comparing maps). From the panels shown, and only from them:

- **Displayed values**: ``HeadScores.normalized(kind)``. The default, "share", is s / Σ|s| per task: signed,
  so a head that hurts a task is blue and one that helps it red. "fraction" (named "|s| share") is its
  magnitude, for the papers' 0–0.004 pictures.
- **Colour scale**: one per view. A display that can be negative (share, z-score, s / max|s|, raw) uses a
  diverging map centred on 0 with limits ±max|v|; "|s| share", and a map the caller knows is never negative
  (``signed=False``: the explorer's maps without a negative value, such as probe accuracies), a sequential map
  from 0. ``plain_label`` names it in words and ``meaning`` says what red and blue mean for the method.
  ``vmax`` clips: a cell beyond the limit carries a clip marker (▲ above, ▼ below) and the colour bar's end
  tick reads "0.03+".
- **Selection**: ``threshold`` keeps displayed values ≥ it; ``top_k`` and ``elbow`` rank the raw score as
  ``HeadScores.top`` does (``analysis.selection.select_heads``). ``by="value"`` (default) ranks signed values,
  the heads that help; ``by="abs"`` ranks |value|, helpers and harmers alike. Each panel's label says which
  ("top 10 by s", "12 with s ≥ 0.01", "elbow: 7 by |s|").
- **Shading**: selected heads keep their colour; the others are greyed — desaturated and lifted into a light
  grey band, so they read as "not selected" in every colour map and never as a near-zero value (white).
  Missing (NaN) heads are dark grey. ``LEGEND`` names each mark.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from matplotlib import colormaps, rcParams
from matplotlib.colors import Colormap
from matplotlib.ticker import MaxNLocator

from ..analysis.selection import select_from
from ..errors import InputError, InputTypeError
from ..results import HeadScores, check_k, check_threshold

__all__ = [
    "BY",
    "DISPLAYS",
    "LEGEND",
    "MAGNITUDE_CMAP",
    "Panel",
    "SIGNED_CMAP",
    "Scale",
    "Selection",
    "beyond",
    "check_by",
    "check_clip",
    "check_cmap",
    "check_normalize",
    "check_vmax",
    "difference_panels",
    "legend_keys",
    "meaning",
    "named_cmap",
    "plain_label",
    "scale_of",
    "shade",
    "task_panels",
    "unit",
]

DISPLAYS = {  # normalisation → what the explorer and the colour bar call it
    "share": "signed share s/Σ|s|",
    "fraction": "|s| share",
    "zscore": "z-score",
    "max": "s / max|s|",
    "none": "raw score",
}
SIGNED_CMAP, MAGNITUDE_CMAP = "RdBu_r", "viridis"
GREY_BAND = (0.80, 0.10)  # greyed cell = 0.80 + 0.10 × the luminance of its colour: [0.80, 0.90]
MISSING_RGB = (0.33, 0.33, 0.33)
BY = {"value": "s", "abs": "|s|"}
LEGEND = {
    "grey": "greyed: not selected",
    "missing": "dark grey: missing (NaN)",
    "significant": "● 95% CI excludes 0",
    "clipped": "▲▼ beyond the colour scale",
    "verified": "□ verified by exact ablation",
}


def unit(scores: HeadScores, normalize: str) -> str:
    """The unit of displayed values (threshold readouts, colour-bar label)."""
    if normalize in ("share", "fraction"):
        return "share of Σ|s|"
    if normalize == "zscore":
        return "σ"
    if normalize == "max":
        return "of max|s|"
    metric = scores.params.get("metric") if isinstance(scores.params, dict) else None
    return {"logit_diff": "logit diff", "logprob": "log-prob"}.get(metric, f"{scores.method} score")


def check_normalize(normalize) -> str:
    if not isinstance(normalize, str) or normalize not in DISPLAYS:
        raise InputError(f"unknown normalize {normalize!r}: choose from {tuple(DISPLAYS)}")
    return normalize


def check_by(by) -> str:
    if not isinstance(by, str) or by not in BY:
        raise InputError(f"by must be 'value' (signed, as top() ranks) or 'abs' (|value|), got {by!r}")
    return by


@dataclass
class Selection:
    """Which heads a view selects: at most one of ``threshold`` (displayed units), ``top_k`` or ``elbow``;
    ``by``: "value" or "abs"."""

    threshold: float | None = None
    top_k: int | None = None
    elbow: bool = False
    by: str = "value"

    def __post_init__(self):
        given = [self.threshold is not None, self.top_k is not None, bool(self.elbow)]
        if sum(given) > 1:
            raise InputError("give one of threshold, top_k or elbow, not several")
        if self.threshold is not None:
            self.threshold = check_threshold("threshold", self.threshold)
        if self.top_k is not None:
            check_k("top_k", self.top_k)
        if not isinstance(self.elbow, (bool, np.bool_)):
            raise InputError(f"elbow must be True or False, got {self.elbow!r}")
        check_by(self.by)

    @property
    def active(self) -> bool:
        return self.threshold is not None or self.top_k is not None or bool(self.elbow)

    def mask(self, raw: np.ndarray, shown: np.ndarray) -> np.ndarray | None:
        """(n_layers, n_heads) bool of the selected heads: the threshold compares ``shown``, top-k and the
        elbow rank ``raw`` (None: no selection)."""
        if self.threshold is not None:
            key = np.abs(shown) if self.by == "abs" else shown
            return np.nan_to_num(key, nan=-np.inf) >= self.threshold
        if self.top_k is None and not self.elbow:
            return None
        rule, k = ("top_k", self.top_k) if self.top_k is not None else ("elbow", None)
        keep = np.zeros(shown.shape, dtype=bool)
        for layer, head in select_from(raw, rule=rule, k=k, by=self.by):
            keep[layer, head] = True
        return keep

    def label(self, keep: np.ndarray | None, raw: np.ndarray | None = None, name: str = "s") -> str:
        """A panel's selection in words, from what it selected: "top 10 by s", "12 with |s| ≥ 0.01", "elbow: 7 by
        s", or "" (``name``: what is ranked, "A − B" for a difference). With ``raw`` (the panel's scores) it says
        what the rule could not do: "no scored heads (all NaN)", "top 3 by s (only 3 scored)" when fewer than k
        are finite, "elbow: none (no s > 0)"."""
        if raw is not None and not np.isfinite(raw).any():
            return f"no scored heads (all {raw.size} NaN)"
        if keep is None:
            return ""
        by, n = (f"|{name}|" if self.by == "abs" else name), int(keep.sum())
        if self.top_k is not None:
            if n == self.top_k:
                return f"top {n} by {by}"
            short = raw is not None and not np.isfinite(raw).all()
            return f"top {n} by {by} (only {n} scored)" if short else f"top {n} by {by} (all {n} heads)"
        if self.elbow:
            if n == 0:
                return "elbow: none (no s > 0)" if self.by == "value" else "elbow: none (every |s| is 0)"
            return f"elbow: {n} by {by}"
        return f"{n} with {by} ≥ {self.threshold:.3g}"


@dataclass
class Scale:
    """The colour scale of one view: limits, whether it is signed (diverging about 0), whether values
    exceed it, its colour map and colour-bar ticks."""

    lo: float
    hi: float
    signed: bool
    clipped: bool
    cmap: str

    def ticks(self) -> np.ndarray:
        ticks = MaxNLocator(nbins=5, symmetric=self.signed).tick_values(self.lo, self.hi)
        ticks = ticks[(ticks >= self.lo - 1e-12) & (ticks <= self.hi + 1e-12)]
        if self.clipped:  # the clip values themselves are the end ticks
            step = float(np.diff(ticks[:2]).sum()) or self.hi - self.lo
            inner = ticks[(ticks < self.hi - 0.5 * step) & (ticks > self.lo + 0.5 * step)]
            ticks = np.concatenate([[self.lo] if self.signed else [], inner, [self.hi]])
        return ticks

    def tick_text(self, value: float) -> str:
        """A tick label: digits enough for the scale, "+" on a clipped end ("0.030+", "−0.030+")."""
        digits = max(0, 1 - math.floor(math.log10(max(abs(self.lo), abs(self.hi), 1e-30))))
        text = f"{value:.{digits}f}"
        if rcParams["axes.unicode_minus"]:
            text = text.replace("-", "\N{MINUS SIGN}")
        ends = (self.hi, self.lo) if self.signed else (self.hi,)
        return text + "+" if self.clipped and any(math.isclose(value, e, rel_tol=1e-9) for e in ends) else text

    def lut(self, n: int = 64) -> list[str]:
        """n colours from lo to hi as "#rrggbb" (the canvas's colour bar)."""
        rgba = named_cmap(self.cmap)(np.linspace(0, 1, n))
        return ["#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in row[:3])) for row in rgba]


def scale_of(panels: list[np.ndarray], normalize: str, vmax=None, signed: bool | None = None, clip=None) -> Scale:
    """The one colour scale of a view, from the finite values of every panel in it; ``signed`` (None: by the
    display, "|s| share" alone sequential) where the caller knows whether the map can be negative. It ends at
    ``vmax`` where given, else at the ``clip``-th percentile of the finite |values| (None or 0: the full range)."""
    vmax = check_vmax(vmax)
    values = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in panels]) if panels else np.zeros(0)
    finite = values[np.isfinite(values)]
    finite = finite if finite.size else np.zeros(1)
    if vmax is None and clip:
        vmax = float(np.percentile(np.abs(finite), clip)) or None  # nothing above 0: the full range
    if signed is None:
        signed = normalize != "fraction"
    signed = signed or normalize == "zscore" or bool((finite < 0).any())
    top = float(np.abs(finite).max()) if signed else float(finite.max())
    top = top if top > 0 else 1.0
    lim = float(vmax) if vmax is not None else top
    cmap = SIGNED_CMAP if signed else MAGNITUDE_CMAP
    return Scale(-lim if signed else 0.0, lim, signed, top > lim * (1 + 1e-9), cmap)


@functools.cache
def named_cmap(name: str) -> Colormap:
    """Matplotlib's colour map ``name``, looked up once: each lookup is a copy whose table is built on its first
    use, a third of an explorer redraw's time. Read it, never change it (``with_extremes`` makes a new one)."""
    return colormaps[name]


def check_cmap(cmap) -> Colormap:
    """A colour map name or ``Colormap``; one line for an unknown one."""
    if isinstance(cmap, str):
        if cmap not in colormaps:
            raise InputError(f"unknown cmap {cmap!r}: use a matplotlib colour map name such as 'RdBu_r' or 'viridis'")
        return named_cmap(cmap)
    if not isinstance(cmap, Colormap):
        raise InputTypeError(f"cmap must be a colour map name or a matplotlib Colormap, not {type(cmap).__name__}")
    return cmap


def shade(shown: np.ndarray, scale: Scale, selected: np.ndarray | None, cmap=None) -> np.ndarray:
    """(..., 4) uint8 RGBA of displayed values: the colour map over the scale, unselected heads greyed,
    missing heads dark grey."""
    cm = check_cmap(cmap if cmap is not None else scale.cmap)
    span = scale.hi - scale.lo
    t = np.clip((np.nan_to_num(shown, nan=scale.lo) - scale.lo) / (span if span > 0 else 1.0), 0.0, 1.0)
    rgba = cm(t)
    if selected is not None:
        lum = rgba[..., :3] @ np.array([0.2126, 0.7152, 0.0722])
        grey = GREY_BAND[0] + GREY_BAND[1] * lum
        rgba[..., :3] = np.where(selected[..., None], rgba[..., :3], grey[..., None])
    rgba[np.isnan(shown), :3] = MISSING_RGB
    rgba[..., 3] = 1.0
    return (rgba * 255 + 0.5).astype(np.uint8)


def beyond(shown: np.ndarray, scale: Scale) -> np.ndarray:
    """Per cell: +1 above the scale, −1 below it, 0 inside (clip markers)."""
    v = np.nan_to_num(shown, nan=0.0)
    above = v > scale.hi * (1 + 1e-9)
    below = (v < scale.lo * (1 + 1e-9)) if scale.signed else np.zeros(v.shape, dtype=bool)
    return above.astype(np.int8) - below.astype(np.int8)


def check_clip(clip):
    """A percentile in [50, 100] where the colour scale ends, or None / 0 for the full range."""
    if clip is None or (not isinstance(clip, bool) and isinstance(clip, (int, float)) and clip == 0):
        return None
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 50 <= clip <= 100:
        raise InputError(
            f"clip must be a percentile from 50 to 100 (99: the 99th percentile of |values|), or None for the full "
            f"range; got {clip!r}"
        )
    return float(clip)


def check_vmax(vmax):
    if vmax is None:
        return None
    if check_threshold("vmax", vmax) <= 0:
        raise InputError(f"vmax must be a positive number, got {vmax!r}")
    return float(vmax)


@dataclass
class Panel:
    """One Layer × Head panel of a view: ``raw`` (the value the readout reports), ``shown`` (the colour's
    value), ``rank`` (1 = highest raw value; None: not ranked), and masks of the same (L, H) shape."""

    title: str
    raw: np.ndarray
    shown: np.ndarray
    rank: np.ndarray | None
    selected: np.ndarray | None
    label: str = ""
    significant: np.ndarray | None = None
    verified: np.ndarray | None = None
    value_name: str = "score"
    ylabel: str = "Layer"


def task_panels(scores: HeadScores, tasks, normalize: str, selection: Selection, significant=None, suffix=""):
    """A panel per task of ``scores`` (``significant``: (n_tasks, L, H) bool over ``scores.tasks``)."""
    shown = scores.normalized(check_normalize(normalize))
    verified = getattr(scores, "verified", None)
    panels = []
    for task in tasks:
        t = scores.tasks.index(task)
        keep = selection.mask(scores.values[t], shown[t])
        panels.append(
            Panel(
                title=f"{task}{suffix}",
                raw=scores.values[t],
                shown=shown[t],
                rank=scores.rank(task),
                selected=keep,
                label=selection.label(keep, scores.values[t]),
                significant=None if significant is None else np.asarray(significant)[t],
                verified=None if verified is None else np.asarray(verified, dtype=bool)[t],
            )
        )
    return panels


def difference_panels(a: HeadScores, b: HeadScores, tasks, normalize: str, selection: Selection, names=("A", "B")):
    """Per task, one panel of a − b in displayed units (same model shape); the selection ranks |a − b|, so the
    largest differences either way are selected."""
    if a.shape[1:] != b.shape[1:]:
        raise InputError(
            f"a difference needs maps of one shape, got {a.shape[1]} × {a.shape[2]} and {b.shape[1]} × {b.shape[2]}: "
            "compare side by side (by relative depth) instead"
        )
    da, db = a.normalized(normalize), b.normalized(normalize)
    selection = replace(selection, by="abs")
    name = f"{names[0]} − {names[1]}"
    panels = []
    for task in tasks:
        diff = da[a.tasks.index(task)] - db[b.tasks.index(task)]
        order = np.argsort(-np.nan_to_num(diff, nan=-np.inf), axis=None, kind="stable")
        rank = np.empty(diff.size, dtype=np.int64)
        rank[order] = np.arange(1, diff.size + 1)
        keep = selection.mask(diff, diff)
        panels.append(
            Panel(
                title=f"{task}: {names[0]} − {names[1]}",
                raw=diff,
                shown=diff,
                rank=rank.reshape(diff.shape),
                selected=keep,
                label=selection.label(keep, diff, name=name),
                value_name="difference",
            )
        )
    return panels


def legend_keys(panels: list[Panel], scale: Scale) -> list[str]:
    """The ``LEGEND`` entries a view needs, in order."""
    keys = []
    if any(p.selected is not None for p in panels):
        keys.append("grey")
    if any(np.isnan(p.shown).any() for p in panels):
        keys.append("missing")
    if any(p.significant is not None for p in panels):
        keys.append("significant")
    if scale.clipped:
        keys.append("clipped")
    if any(p.verified is not None for p in panels):
        keys.append("verified")
    return keys


def plain_label(scores: HeadScores, normalize: str, difference: bool = False) -> str:
    """The colour bar's title in words: "share of the task's total effect", "effect in standard deviations",
    "metric change (logit diff)"; a difference of two maps says so."""
    what = "effect" if scores.method in ABLATING else "score"
    text = {
        "share": f"share of the task's total {what}",
        "fraction": f"share of the task's total |{what}|",
        "zscore": f"{what} in standard deviations",
        "max": f"{what} / the largest {what}",
        "none": "metric change" if what == "effect" else "score",
    }[check_normalize(normalize)]
    if normalize == "none":
        text += f" ({unit(scores, normalize)})"
    return f"A − B: {text}" if difference else text


def meaning(method: str, signed: bool, difference: bool = False) -> str:
    """One line in words: what the colours mean for maps of ``method`` (red and blue when ``signed``)."""
    if difference:
        return "red: map A scores the head higher than map B · blue: map B scores it higher"
    if not signed:
        return "yellow: the largest values · dark: near 0 (this map has no negative value)"
    return MEANINGS.get(method, "red: a positive score · blue: a negative one")


ABLATING = ("attribution", "ablation", "verified")  # their score: how much ablating the head lowers the metric
MEANINGS = {
    **dict.fromkeys(
        ABLATING, "red: ablating the head lowers the task's metric (the head helps) · blue: it raises it (it hurts)"
    ),
    "gating": "red: gating the head off hurts the task (it facilitates) · blue: it helps (the head interferes)",
    "probe": "red: the head's activations point the probe to the task · blue: away from it",
}
