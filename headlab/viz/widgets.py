"""``explorer()``: a notebook dashboard over head scores — pick a model, method, tasks, normalisation and
threshold (or top-k), and inspect one head's score, rank and attention pattern.

- Threshold / top-k / normalisation / task changes redraw from cached scores: the ``GridView`` updates its
  artists in place (``set_data`` / ``set_clim`` / ``set_alpha``) and the figure is re-displayed in an
  ``Output`` (inline backend) or redrawn on its canvas (ipympl).
- The "CI" toggle dots the heads whose 95% bootstrap CI excludes 0 (``stats.bootstrap``, computed once per
  scores object); it is disabled, the reason in its tooltip, when the scores hold < 2 items per task.
- Model / method changes call ``headlab.score`` (its disk cache applies) with its progress bar
  shown inside the widget; results are kept per (model, method) for the session.
- Errors show as one line in ``Explorer.error``, never as a traceback.
"""

from __future__ import annotations

import base64
import functools
import html
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import ipywidgets as W
import matplotlib
import numpy as np
from IPython.display import display
from matplotlib.figure import Figure

from .. import scorers, scoring
from ..analysis import stats
from ..engine import hooks
from ..metrics import prompt_ids
from ..results import HeadScores
from ..tasks import TASK_NAMES, TaskError, as_task_list, builtin
from . import plot

METHODS = scorers.variants()  # "method · variant" → (method, score() keywords), from the registry
NORMALIZE_OPTIONS = (("fraction |s|/Σ|s|", "fraction"), ("z-score", "zscore"), ("s / max|s|", "max"), ("raw", "none"))
DEFAULT_MODEL = "smollm2-135m (embedded)"
LOG_SLIDER_DECADES = 2  # a FloatLogSlider when the selectable values span at least this many decades
CI_TOOLTIP = "dot the heads whose 95% bootstrap CI over the task's items excludes 0"


@dataclass
class HeadDetails:
    """One head of one task: its raw score and displayed value, rank (1 = best of n_heads), and its
    attention pattern (n_tokens × n_tokens, query × key) on one of the task's prompts."""

    task: str
    layer: int
    head: int
    value: float
    shown: float
    rank: int
    n_heads: int
    tokens: list[str]
    pattern: np.ndarray
    figure: Figure

    def summary(self) -> str:
        return (
            f"L{self.layer}.H{self.head} in {self.task}: score {self.value:.4g} (shown {self.shown:.4g}), "
            f"rank {self.rank} of {self.n_heads}"
        )


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` — what the widget shows instead of a traceback."""
    msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    first = msg.strip().splitlines()[0] if msg.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _guarded(handler):
    """Widget callbacks: on success clear the error line, on failure show the error as one line."""

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        try:
            handler(self, *args, **kwargs)
        except Exception as err:  # a widget callback must never raise into the frontend
            self.error.value = f"<span style='color:#b00020'>⚠ {html.escape(one_line(err))}</span>"
        else:
            self.error.value = ""

    return wrapper


def _method_choices(methods) -> dict[str, tuple[str, dict]]:
    if methods is None:
        return dict(METHODS)
    if isinstance(methods, str):
        methods = [methods]
    try:
        methods = list(methods)
    except TypeError:
        raise ValueError(f"methods= takes a list of method labels, not {type(methods).__name__}") from None
    choices = {}
    for m in methods:
        pair = isinstance(m, (tuple, list)) and len(m) == 2
        label = m if isinstance(m, str) else f"{m[0]} · {m[1]}" if pair else None
        if label not in METHODS:
            raise ValueError(f"unknown method {m!r}: choose from {list(METHODS)}")
        choices[label] = METHODS[label]
    if not choices:
        raise ValueError("explorer() needs at least one method")
    return choices


def _label_of(scores: HeadScores) -> str:
    """The ``METHODS`` label of how ``scores`` were computed."""
    for label, (method, kwargs) in METHODS.items():
        if method == scores.method and all(scores.params.get(k) == v for k, v in kwargs.items()):
            return label
    return f"{scores.method} · ?"


def _shape_of(model):
    """(n_layers, n_heads) of a loaded bridge, or None for something that does not say (a stand-in)."""
    cfg = getattr(model, "cfg", None)
    try:
        return int(cfg.n_layers), int(cfg.n_heads)
    except (AttributeError, TypeError, ValueError):
        return None


def check_fit(scores: HeadScores, model, name: str) -> None:
    """Refuse scores of another model shape than model ``name``'s: one line naming both shapes."""
    shape = _shape_of(model)
    if shape is not None and shape != tuple(scores.shape[1:]):
        raise ValueError(
            f"scores are of a {scores.shape[1]} × {scores.shape[2]} model ({scores.model.name}) but model "
            f"{name!r} is {shape[0]} × {shape[1]}: pass the scores computed on that model"
        )


def check_tasks_match(scores: HeadScores, tasks: dict) -> None:
    """Refuse Task objects whose items differ from those the scores were computed on (same names, other
    items), where the scores record them (``params["task_hashes"]``)."""
    recorded = scores.params.get("task_hashes") if isinstance(scores.params, dict) else None
    if not isinstance(recorded, dict):
        return
    other = [name for name, t in tasks.items() if name in recorded and recorded[name] != t.content_hash()]
    if other:
        raise ValueError(
            f"scores= were computed on other items than tasks= gives for {other}: pass the Task objects the scores "
            "came from"
        )


def _interactive_backend() -> bool:
    backend = (matplotlib.get_backend(auto_select=False) or "").lower()
    return "ipympl" in backend or backend == "widget"


class Explorer:
    """The dashboard: ``.widget`` (what a notebook shows), ``.controls`` (name → widget), ``.view`` (the
    ``GridView``), ``.scores`` (the HeadScores shown), ``.redraw()``, ``.significant()`` (the CI mask) and
    ``.details(task, layer, head)``.

    ``models``: name → TransformerBridge, or a callable returning one (called on first use).
    ``tasks``: Tasks (a mapping like ``builtin()`` or a list; default: the eight built-in tasks).
    ``methods``: labels of ``METHODS`` or (method, variant) pairs (default: all: six ablation/attribution
    variants, the two probes, gating).
    ``scores``: HeadScores of the first model and its method: shown at start, nothing computed.
    """

    def __init__(self, models=None, tasks=None, methods=None, scores=None):
        from ..models import load_model

        if models is not None and not isinstance(models, Mapping):
            raise ValueError(
                f"models= takes a dict name → model (a bridge, a name for load_model, or a callable), not "
                f"{type(models).__name__}"
            )
        self.models = dict(models) if models is not None else {DEFAULT_MODEL: load_model}
        if not self.models:
            raise ValueError("explorer() needs at least one model")
        bad = [k for k in self.models if not isinstance(k, str) or not k]
        if bad:
            raise ValueError(f"models= keys are the names shown in the menu: non-empty strings, got {bad!r}")
        self.methods = _method_choices(methods)
        if scores is not None and not isinstance(scores, HeadScores):
            raise TypeError(f"scores= takes HeadScores, not {type(scores).__name__}")
        self._tasks = (
            None
            if tasks is None and scores is not None
            else {t.name: t for t in as_task_list(builtin() if tasks is None else tasks)}
        )
        names = list(self._tasks) if self._tasks is not None else list(scores.tasks)
        self._loaded, self._cache, self._bootstraps = {}, {}, {}
        method = next(iter(self.methods))
        if scores is not None:
            if set(scores.tasks) != set(names):
                raise ValueError(f"scores= has tasks {scores.tasks} but tasks= has {names}: give the same tasks")
            if self._tasks is not None:
                check_tasks_match(scores, self._tasks)
            method = _label_of(scores)
            if method not in self.methods:
                raise ValueError(f"scores= were computed with {method!r}, not one of the methods {list(self.methods)}")
            first = next(iter(self.models))
            entry = self.models[first]
            if _shape_of(entry) is not None:
                check_fit(scores, entry, first)  # a model given loaded: checked now; a lazy one when loaded
            self._cache[(first, method)] = scores

        wide = {"description_width": "initial"}
        self.controls = c = {
            "model": W.Dropdown(options=list(self.models), description="Model", style=wide),
            "method": W.Dropdown(options=list(self.methods), value=method, description="Method", style=wide),
            "normalize": W.Dropdown(options=NORMALIZE_OPTIONS, value="fraction", description="Normalise", style=wide),
            "tasks": W.SelectMultiple(options=names, value=tuple(names), rows=min(8, len(names)), description="Tasks"),
            "threshold": W.FloatSlider(description="Threshold", disabled=True),
            "top_k": W.ToggleButton(value=False, description="top-k", tooltip="select each task's k best heads"),
            "k": W.BoundedIntText(value=10, min=1, max=10, description="k", layout=W.Layout(width="120px")),
            "ci": W.ToggleButton(value=False, description="CI", tooltip=CI_TOOLTIP),
            "detail_task": W.Dropdown(options=names, description="Task"),
            "layer": W.BoundedIntText(value=0, min=0, max=0, description="Layer", layout=W.Layout(width="150px")),
            "head": W.BoundedIntText(value=0, min=0, max=0, description="Head", layout=W.Layout(width="150px")),
            "show": W.Button(description="Show head", icon="search"),
        }
        self.error, self.status = W.HTML(), W.Label()
        self.progress, self.out, self.details_out = W.Output(), W.Output(), W.Output()
        self.image, self.hover = W.Image(format="png"), W.Label()  # the grid as PNG; what the pointer is on
        self._threshold_box = W.HBox([c["threshold"]])
        self.scores = self.view = None
        self._quiet = False  # True while a callback sets controls itself: their observers stand by
        self._interactive = _interactive_backend()
        if self._interactive:  # ipympl: a live canvas, clickable
            import matplotlib.pyplot as plt

            with plt.ioff():
                self.figure = plt.figure()
            with self.out:
                display(self.figure.canvas)
        else:  # a PNG that listens: hover names a head, a click shows its details
            from ipyevents import Event

            self.figure = plot.HeadlabFigure()
            self._pointer = Event(
                source=self.image, watched_events=["click", "mousemove"], throttle_or_debounce="throttle", wait=80
            )
            self._pointer.on_dom_event(self._on_pointer)
        self.figure.canvas.mpl_connect("button_press_event", self._on_click)  # fires on interactive canvases only

        for name in ("model", "method"):
            c[name].observe(self._on_source, names="value")
        c["normalize"].observe(self._on_normalize, names="value")
        for name in ("tasks", "top_k", "k", "ci"):
            c[name].observe(self._on_view, names="value")
        c["show"].on_click(self._on_show)
        self.widget = W.VBox(
            [
                W.HBox(
                    [
                        W.VBox(
                            [
                                c["model"],
                                c["method"],
                                c["normalize"],
                                self._threshold_box,
                                W.HBox([c["top_k"], c["k"], c["ci"]]),
                            ]
                        ),
                        c["tasks"],
                    ]
                ),
                self.status,
                self.error,
                self.progress,
                self.out if self._interactive else self.image,
                self.hover,
                W.HTML("<b>Head details</b>"),
                W.HBox([c["detail_task"], c["layer"], c["head"], c["show"]]),
                self.details_out,
            ]
        )
        self._on_source()

    def _ipython_display_(self):
        display(self.widget)

    # --- data ------------------------------------------------------------------------------------

    def model(self, name: str):
        """The bridge behind model ``name``, loading it on first use."""
        if name not in self._loaded:
            import torch

            from ..models import load_model

            entry = self.models[name]
            if isinstance(entry, str):  # a name or folder for load_model
                bridge = load_model(entry)
            else:
                bridge = entry if isinstance(entry, torch.nn.Module) or not callable(entry) else entry()
            for (model, _), scores in self._cache.items():
                if model == name:
                    check_fit(scores, bridge, name)
            self._loaded[name] = bridge
        return self._loaded[name]

    def task_objects(self) -> dict:
        """The Task objects behind the scores: those given as ``tasks=``, else the built-in tasks — only when
        the scores record that they were computed on exactly the built-in items (never other tasks of the same
        names)."""
        if self._tasks is None:
            names = list(self.scores.tasks)
            unknown = [n for n in names if n not in TASK_NAMES]
            if unknown:
                raise TaskError(
                    f"unknown built-in task(s) {unknown}: pass explorer(tasks=...), the Task objects these scores "
                    "were computed on"
                )
            recorded = self.scores.params.get("task_hashes") if isinstance(self.scores.params, dict) else None
            found = builtin(names)
            if not isinstance(recorded, dict) or any(recorded.get(n) != t.content_hash() for n, t in found.items()):
                raise TaskError(
                    f"these scores do not record being computed on the built-in items of {names}: pass "
                    "explorer(tasks=...), the Task objects they were computed on"
                )
            self._tasks = found
        return self._tasks

    def scores_for(self, model: str, method: str) -> HeadScores:
        """Cached scores of (model, method), computing them with ``headlab.scoring.score`` when new."""
        key = (model, method)
        if key not in self._cache:
            kind, kwargs = self.methods[method]
            bridge = self.model(model)
            self.status.value = f"computing {method} on {model} …"
            with self.progress:
                try:
                    tasks = list(self.task_objects().values())
                    self._cache[key] = scoring.score(bridge, tasks, method=kind, progress=True, **kwargs)
                finally:
                    self.progress.clear_output()
        return self._cache[key]

    def significant(self) -> np.ndarray:
        """(task, layer, head) bool: ``stats.bootstrap(self.scores).significant``, computed once per scores."""
        scores = self.scores
        if id(scores) not in self._bootstraps:  # the entry keeps ``scores`` alive: its id stays its own
            self._bootstraps[id(scores)] = (scores, stats.bootstrap(scores))
        return self._bootstraps[id(scores)][1].significant

    # --- drawing ---------------------------------------------------------------------------------

    def _selection(self) -> dict:
        c = self.controls
        return {"top_k": c["k"].value} if c["top_k"].value else {"threshold": c["threshold"].value}

    def _new_threshold_slider(self) -> None:
        """A threshold slider over the current display's values: log-scaled when they span decades."""
        key = self.view.key()
        key = key[np.isfinite(key)]  # missing (NaN) heads take no part in the range
        key = key if key.size else np.zeros(1)
        hi, positive = float(key.max()), key[key > 0]
        lo = float(positive.min()) if positive.size else 0.0
        value = float(np.quantile(key, 0.8))
        common = dict(description="Threshold", continuous_update=False, readout_format=".3g")
        if lo > 0 and hi / lo >= 10**LOG_SLIDER_DECADES:
            lo = max(lo, hi * 1e-4)
            slider = W.FloatLogSlider(
                value=min(max(value, lo), hi),
                base=10,
                min=np.log10(lo),
                max=np.log10(hi),
                step=(np.log10(hi) - np.log10(lo)) / 200,
                **common,
            )
        else:
            lo = float(key.min())
            hi = hi if hi > lo else lo + 1.0
            slider = W.FloatSlider(value=value, min=lo, max=hi, step=(hi - lo) / 200, **common)
        slider.disabled = self.controls["top_k"].value
        slider.observe(self._on_view, names="value")
        self.controls["threshold"] = slider
        self._threshold_box.children = (slider,)

    def _show(self) -> None:
        if self._interactive:
            self.figure.canvas.draw_idle()
            return
        self.image.value = self.view.render_png()  # blitted: only images and titles are redrawn

    def redraw(self) -> None:
        """Apply the controls to the view in place (no recomputation) and re-display the figure."""
        c = self.controls
        if self.view is None:
            return
        if not c["tasks"].value:
            raise ValueError("no task selected: select at least one task")
        c["threshold"].disabled = c["top_k"].value
        self.view.update(
            tasks=list(c["tasks"].value),
            normalize=c["normalize"].value,
            significant=self.significant() if c["ci"].value else None,
            **self._selection(),
        )
        self._show()

    # --- callbacks -------------------------------------------------------------------------------

    @_guarded
    def _on_source(self, change=None) -> None:
        c = self.controls
        self.scores = scores = self.scores_for(c["model"].value, c["method"].value)
        _, L, H = scores.shape
        self.view = plot.GridView(
            scores, tasks=list(c["tasks"].value) or None, normalize=c["normalize"].value, fig=self.figure
        )
        self._new_threshold_slider()
        try:
            stats.check_items(scores)
            reason = None
        except ValueError as err:
            reason = f"CI unavailable: {err}"
        self._quiet = True
        try:
            c["k"].max = L * H
            c["layer"].max, c["head"].max = L - 1, H - 1
            c["ci"].disabled, c["ci"].tooltip = reason is not None, reason or CI_TOOLTIP
            if reason:
                c["ci"].value = False
        finally:
            self._quiet = False
        self.status.value = (
            f"{c['method'].value} on {scores.model.name}: {len(scores.tasks)} tasks, {L} layers × {H} heads"
        )
        self.redraw()

    @_guarded
    def _on_normalize(self, change=None) -> None:
        if self.view is None:
            return
        self.view.update(normalize=self.controls["normalize"].value)
        self._new_threshold_slider()
        self.redraw()

    @_guarded
    def _on_view(self, change=None) -> None:
        if not self._quiet:
            self.redraw()

    @_guarded
    def _on_show(self, button=None) -> None:
        c = self.controls
        self.details(c["detail_task"].value, c["layer"].value, c["head"].value)

    def head_at(self, x: float, y: float) -> tuple[str, int, int] | None:
        """(task, layer, head) under pixel (x, y) of the grid's PNG (origin top left), or None."""
        if self.view is None:
            return None
        y_up = self.figure.bbox.height - y  # matplotlib's display coordinates start bottom left
        _, L, H = self.scores.shape
        for task, ax in zip(self.view.tasks, self.view.axes):
            if ax.bbox.contains(x, y_up):
                head, layer = ax.transData.inverted().transform((x, y_up))
                return task, min(max(round(layer), 0), L - 1), min(max(round(head), 0), H - 1)
        return None

    @_guarded
    def _on_pointer(self, event: dict) -> None:
        """ipyevents on the grid PNG: ``dataX`` / ``dataY`` are image pixels."""
        hit = self.head_at(event["dataX"], event["dataY"]) if "dataX" in event else None
        if hit is None:
            self.hover.value = ""
            return
        task, layer, head = hit
        if event.get("type") == "click":
            self._show_details(task, layer, head)
            return
        t, (_, L, H) = self.scores.tasks.index(task), self.scores.shape
        self.hover.value = (
            f"L{layer}.H{head} · {task}: score {self.scores.values[t, layer, head]:.4g}, rank "
            f"{int(self.scores.rank(task)[layer, head])} of {L * H} — click for its attention pattern"
        )

    def _show_details(self, task: str, layer: int, head: int) -> None:
        c = self.controls
        c["detail_task"].value, c["layer"].value, c["head"].value = task, layer, head
        self._on_show()

    def _on_click(self, event) -> None:
        """A click on a panel (ipympl) shows that head's details."""
        shown = self.view.axes[: len(self.view.tasks)] if self.view else []
        if event.inaxes not in shown or event.xdata is None:
            return
        self._show_details(self.view.tasks[shown.index(event.inaxes)], int(round(event.ydata)), int(round(event.xdata)))

    # --- head details ----------------------------------------------------------------------------

    def details(self, task: str, layer: int, head: int, item: int = 0) -> HeadDetails:
        """Score, rank and attention pattern (on the task's ``item``-th prompt) of head (layer, head);
        also shown below the grid."""
        import torch

        from ..metrics import max_positions

        scores = self.scores
        if scores is None:
            raise ValueError("no scores yet: pick a model and method that compute")
        if not isinstance(task, str) or task not in scores.tasks:
            raise ValueError(f"unknown task {task!r}: choose from {scores.tasks}")
        _, L, H = scores.shape
        for name, value in (("layer", layer), ("head", head), ("item", item)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if not (0 <= layer < L and 0 <= head < H):
            raise ValueError(f"no head L{layer}.H{head}: layers are 0–{L - 1}, heads 0–{H - 1}")
        t = scores.tasks.index(task)
        bridge = self.model(self.controls["model"].value)
        items = self.task_objects()[task].items
        if not 0 <= item < len(items):
            raise ValueError(f"no item {item} in {task!r}: it has items 0–{len(items) - 1}")
        prompt = items[item].prompt
        ids = prompt_ids(bridge.tokenizer, prompt)
        n_ctx = max_positions(bridge)
        if n_ctx is not None and len(ids) > n_ctx:
            raise ValueError(
                f"task {task!r}: item {item}'s prompt is {len(ids)} tokens but the model takes at most {n_ctx}"
            )
        with torch.no_grad():
            _, cache = bridge.run_with_cache(
                torch.tensor([ids], device=next(bridge.parameters()).device), names_filter=hooks.pattern(layer)
            )
        pattern = cache[hooks.pattern(layer)][0, head].float().cpu().numpy()
        tokens = [bridge.tokenizer.decode([i]) for i in ids]
        fig = plot.attention_pattern(pattern, tokens, title=f"L{layer}.H{head} · {task} · prompt {item}")
        info = HeadDetails(
            task,
            layer,
            head,
            float(scores.values[t, layer, head]),
            float(scores.normalized(self.controls["normalize"].value)[t, layer, head]),
            int(scores.rank(task)[layer, head]),
            L * H,
            tokens,
            pattern,
            fig,
        )
        # Written to the Output's state, not captured with `with out:` — a call from a cell then adds
        # nothing to that cell's own outputs (what nbval compares). The PNG goes in as base64 text: raw
        # bytes in widget state travel as binary buffers, which the output renderer cannot show.
        summary = html.escape(info.summary())
        self.details_out.outputs = (
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"text/html": f"<p>{summary}</p>", "text/plain": info.summary()},
            },
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": base64.b64encode(fig._repr_png_()).decode("ascii"), "text/plain": repr(fig)},
            },
        )
        return info


def explorer(models=None, tasks=None, methods=None, scores=None) -> Explorer:
    """Build the dashboard (see ``Explorer``); a notebook cell ending in ``explorer()`` displays it."""
    return Explorer(models=models, tasks=tasks, methods=methods, scores=scores)
