"""``explorer()``: a notebook dashboard over head scores — pick a model, a method, the tasks, how values are
coloured and which heads are selected; hover a head for its numbers, click it for its attention pattern;
compare two maps; save the view as a standalone page.

- **The grid is drawn in the browser** (``viz.canvas.HeadGrid``, an anywidget): the kernel sends numbers
  (colours, values, ranks, flags), never an image, so a redraw is one small message; hover is answered in
  the browser from the same numbers. What a panel shows is ``viz.display``'s, as in ``plot.heatmap_grid``.
- **Signed by default**: colour "signed share s/Σ|s|" on a diverging map; selections rank by s (as
  ``top()``) or by |s|, and every panel says which.
- **Long jobs** (a model or method not computed yet) run in a worker thread: the controls stay live, the
  progress bar counts tasks ("task 3 of 8"), **Cancel** stops within one block's time (finished tasks stay in
  the disk cache). A job estimated (``scoring.estimate``) above ``ASK_ABOVE_S`` seconds asks first.
- **Honest state**: hover and head details always belong to the scores on screen; a change of scores or
  tasks clears them, the status line is rebuilt from what is shown, and out-of-range input is an error.
- Errors show as one line in ``Explorer.error``, never as a traceback.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import numbers
import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as W
import numpy as np
import traitlets
from IPython.display import display as show_widget
from matplotlib.figure import Figure

from .. import scorers, scoring
from ..analysis import stats
from ..cache import model_fingerprint
from ..engine import hooks, progress
from ..files import output_path, write_file
from ..metrics import prompt_ids
from ..results import HeadScores, check_model
from ..tasks import TASK_NAMES, TaskError, as_task_list, builtin
from . import canvas, display, plot

METHODS = scorers.variants()  # "method · variant" → (method, score() keywords), from the registry
NORMALIZE_OPTIONS = tuple((label, key) for key, label in display.DISPLAYS.items())
SELECT_OPTIONS = (("off", "none"), ("threshold", "threshold"), ("top-k", "top_k"), ("elbow", "elbow"))
BY_OPTIONS = (("by s (signed)", "value"), ("by |s|", "abs"))
CLIP_OPTIONS = (
    ("full range", 0.0),
    ("clip at 99.5th pct", 99.5),
    ("clip at 99th pct", 99.0),
    ("clip at 95th pct", 95.0),
)
COMPARE_MODES = (("side by side", "side"), ("difference A − B", "difference"))
NO_COMPARE = "— none —"
DEFAULT_MODEL = "smollm2-135m (embedded)"
ASK_ABOVE_S = 30.0  # a job estimated to take longer asks before it starts
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
    source: str = ""
    item: int = 0

    def summary(self) -> str:
        """One line: the head's score, shown value and rank (a missing head: no score, no rank)."""
        source = f" · {self.source}" if self.source else ""
        if math.isnan(self.value):
            said = "no score (NaN: missing in this map), not ranked"
        else:
            said = f"score {self.value:.4g} (shown {self.shown:.4g}), rank {self.rank} of {self.n_heads} by s"
        return f"L{self.layer}.H{self.head} in {self.task}{source}: {said} · pattern of prompt {self.item}"


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` — what the widget shows instead of a traceback."""
    msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    first = msg.strip().splitlines()[0] if msg.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _guarded(handler):
    """Widget callbacks: on success clear the error line, on failure show the error as one line."""

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        if self._muted:  # a control set from code: its observer stands by, the error line stays
            return
        try:
            with self._lock:
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


def _entry_of(scores: HeadScores) -> tuple[str, tuple[str, dict]]:
    """The menu entry (label, (method, ``score()`` keywords)) of how ``scores`` were computed: the ``METHODS``
    entry whose keywords, the method's default options and the default metric all match its ``params``, else an
    entry of its own labelled by what differs (``attribution · resample · steps=8``; a hand-built map whose params do
    not say its ablation: ``ablation · ablation ?``), so that a map is never shown under the label of another
    computation."""
    if scores.method not in scorers.names():
        return f"{scores.method} · ?", (scores.method, {})
    scorer = scorers.get(scores.method)
    defaults = {**scorer.options, **({"metric": "logit_diff"} if scorer.uses_metric else {})}

    def given(key):  # a map saved before an option existed was computed with its default
        return _plain(scores.params.get(key, defaults.get(key)))

    for label, (method, kwargs) in METHODS.items():
        if method == scores.method and all(given(k) == _plain(v) for k, v in {**defaults, **kwargs}.items()):
            return label, (method, kwargs)
    kwargs = {"ablation": scores.params.get("ablation")} if scorer.uses_ablation else {}
    kwargs.update({k: given(k) for k in defaults if given(k) != _plain(defaults[k])})
    what = " · ".join(
        (v if isinstance(v, str) else "ablation ?" if v is None else f"ablation={v}") if k == "ablation" else f"{k}={v}"
        for k, v in kwargs.items()
    )
    return f"{scores.method} · {what or '?'}", (scores.method, kwargs)


def _plain(value):
    """``value`` as its saved params hold it (tuples as lists), to compare an option with its default."""
    return json.loads(json.dumps(value, default=str))


def _shape_of(model):
    """(n_layers, n_heads) of a loaded bridge, or None for something that does not say (a stand-in)."""
    cfg = getattr(model, "cfg", None)
    try:
        return int(cfg.n_layers), int(cfg.n_heads)
    except (AttributeError, TypeError, ValueError):
        return None


def check_fit(scores: HeadScores, model, name: str, cross_model: bool = False) -> None:
    """Refuse scores of another model than model ``name``'s (``results.check_model``: shape, name, fingerprint);
    ``cross_model=True`` shows them with one warning."""
    if _shape_of(model) is not None:
        check_model(f"explorer(scores=) on model {name!r}", scores, model, cross_model)


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


def shown_text(text: str, html_text: str | None = None) -> dict:
    """A display_data output (an ``Output`` widget's state) of plain text, and its HTML where given."""
    data = {"text/plain": text, **({"text/html": html_text} if html_text else {})}
    return {"output_type": "display_data", "metadata": {}, "data": data}


def shown_figure(fig) -> dict:
    """A display_data output of a figure's PNG, as base64 text (raw bytes would travel as a binary buffer,
    which the output renderer cannot show)."""
    png = base64.b64encode(fig._repr_png_()).decode("ascii")
    return {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": repr(fig)}}


def duration(seconds: float) -> str:
    """ "45 s", "3 min", "1.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class TaskChips(W.HBox):
    """One toggle chip per task, and "all" / "none": ``value`` is the tuple of the selected names, in the
    tasks' order."""

    value = traitlets.Tuple()

    def __init__(self, names):
        self.names = list(names)
        self.chips = {
            n: W.ToggleButton(value=True, description=n, tooltip=f"show {n}", layout=W.Layout(width="auto"))
            for n in self.names
        }
        every, none = (
            W.Button(description=d, layout=W.Layout(width="auto"), tooltip=t)
            for d, t in (("all", "show every task"), ("none", "clear, then pick tasks"))
        )
        every.on_click(lambda _: setattr(self, "value", tuple(self.names)))
        none.on_click(lambda _: setattr(self, "value", ()))
        super().__init__([W.Label("Tasks"), *self.chips.values(), every, none], layout=W.Layout(flex_flow="row wrap"))
        self._syncing = False
        for chip in self.chips.values():
            chip.observe(self._from_chips, names="value")
        self.value = tuple(self.names)

    @traitlets.validate("value")
    def _check(self, proposal):
        value = tuple(proposal["value"])
        unknown = [v for v in value if v not in self.names]
        if unknown:
            raise traitlets.TraitError(f"unknown task(s) {unknown}: choose from {self.names}")
        return tuple(n for n in self.names if n in value)

    @traitlets.observe("value")
    def _to_chips(self, change):
        self._syncing = True
        try:
            for n, chip in self.chips.items():
                chip.value = n in change["new"]
                chip.button_style = "info" if chip.value else ""
        finally:
            self._syncing = False

    def _from_chips(self, change):
        if not self._syncing:
            self.value = tuple(n for n, chip in self.chips.items() if chip.value)


class Explorer:
    """The dashboard: ``.widget`` (what a notebook shows), ``.controls`` (name → widget), ``.grid`` (the
    ``HeadGrid``), ``.scores`` (the HeadScores shown), ``.redraw()``, ``.significant()`` (the CI mask),
    ``.details(task, layer, head, item=0)``, ``.save_html(path)``, ``.wait()`` (until a running job ends).

    ``models``: name → TransformerBridge, a name or folder for ``load_model``, or a callable returning a
    bridge (called on first use).
    ``tasks``: Tasks (a mapping like ``builtin()`` or a list; default: the eight built-in tasks).
    ``methods``: labels of ``METHODS`` or (method, variant) pairs (default: every registered variant).
    ``scores``: HeadScores of the first model and its method: shown at start, nothing computed; a map of another
    model (name or fingerprint: ``results.check_model``) is refused unless ``cross_model=True``.
    """

    def __init__(self, models=None, tasks=None, methods=None, scores=None, cross_model: bool = False):
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
        if not isinstance(cross_model, bool):
            raise ValueError(f"cross_model must be True or False, got {cross_model!r}")
        self._cross_model = cross_model
        if scores is not None and not isinstance(scores, HeadScores):
            raise TypeError(f"scores= takes HeadScores, not {type(scores).__name__}")
        self._tasks = (
            None
            if tasks is None and scores is not None
            else {t.name: t for t in as_task_list(builtin() if tasks is None else tasks)}
        )
        names = list(self._tasks) if self._tasks is not None else list(scores.tasks)
        self._loaded, self._cache, self._bootstraps = {}, {}, {}
        self._given = scores  # the map passed as scores=: checked once against its model, never recomputed
        self._lock = threading.RLock()
        self._job = self._pending = None
        self._cancel = threading.Event()
        self._version = 0
        self._panel_sources, self._notes, self._muted, self._details_of = [], [], False, None
        self.curve = None  # the faithfulness figure shown, if any
        self._job_at, self._last_tick, self._fitted, self._range_stale = (0, 1, ""), 0.0, False, True
        method = next(iter(self.methods))
        first = next(iter(self.models))
        if scores is not None:
            if set(scores.tasks) != set(names):
                raise ValueError(f"scores= has tasks {scores.tasks} but tasks= has {names}: give the same tasks")
            if self._tasks is not None:
                check_tasks_match(scores, self._tasks)
            method, computed = _entry_of(scores)
            self.methods.setdefault(method, computed)  # shown under what computed it, in the menu if it was not
            entry = self.models[first]
            if _shape_of(entry) is not None:
                check_fit(scores, entry, first, cross_model)  # a loaded model now; a lazy one when loaded
            self._cache[(first, method)] = scores
        self.shown = None  # the (model, method) whose scores are on screen

        wide = {"description_width": "initial"}
        small = lambda w: W.Layout(width=w)  # noqa: E731
        self.controls = c = {
            "model": W.Dropdown(options=list(self.models), value=first, description="Model", style=wide),
            "method": W.Dropdown(options=list(self.methods), value=method, description="Method", style=wide),
            "compare": W.Dropdown(options=[NO_COMPARE], description="Compare with", style=wide),
            "compare_mode": W.ToggleButtons(options=COMPARE_MODES, value="side", style={"button_width": "auto"}),
            "normalize": W.Dropdown(options=NORMALIZE_OPTIONS, value="share", description="Colour", style=wide),
            "select": W.ToggleButtons(options=SELECT_OPTIONS, value="none", style={"button_width": "auto"}),
            "by": W.ToggleButtons(options=BY_OPTIONS, value="value", style={"button_width": "auto"}),
            "threshold": W.FloatLogSlider(
                value=0.01, base=10, min=-4, max=0, step=0.02, readout=False, continuous_update=False
            ),
            "threshold_value": W.FloatText(value=0.01, layout=small("110px"), step=None),
            "unit": W.Label(""),
            "k": W.IntText(value=10, description="k", layout=small("120px"), style=wide),
            "curve": W.ToggleButton(
                value=False,
                description="faithfulness curve",
                tooltip="the Head-details task's metric and accuracy with its top k heads masked, against "
                "layer-matched random k (10 draws)",
                layout=small("auto"),
            ),
            "clip": W.Dropdown(options=CLIP_OPTIONS, value=0.0, description="Scale", style=wide),
            "ci": W.ToggleButton(value=False, description="CI dots", tooltip=CI_TOOLTIP, layout=small("auto")),
            "tasks": TaskChips(names),
            "detail_task": W.Dropdown(options=names, description="Task", style=wide),
            "layer": W.IntText(value=0, description="Layer", layout=small("130px"), style=wide),
            "head": W.IntText(value=0, description="Head", layout=small("120px"), style=wide),
            "item": W.Dropdown(options=[("0", 0)], description="Prompt", style=wide, layout=small("340px")),
            "show": W.Button(description="Show head", icon="search", layout=small("auto")),
            "cancel": W.Button(description="Cancel", icon="stop", button_style="warning", layout=small("auto")),
            "run": W.Button(description="Run it", button_style="primary", layout=small("auto")),
            "keep": W.Button(description="Not now", layout=small("auto")),
        }
        self.error, self.status, self.ask = W.HTML(), W.HTML(), W.HTML()
        self.bar = W.FloatProgress(value=0, min=0, max=1, layout=small("260px"))
        self.job_label = W.Label("")
        self.grid = canvas.HeadGrid()
        self.details_out = W.Output()
        self.grid.on_click(self._on_grid_click)

        self._threshold_box = W.HBox([W.Label("Threshold"), c["threshold"], c["threshold_value"], c["unit"]])
        self._k_box = W.HBox([c["k"], c["curve"]])
        self.curve_out = W.Output()
        self._job_box = W.HBox([self.bar, self.job_label, c["cancel"]], layout=W.Layout(display="none"))
        self._ask_box = W.HBox([self.ask, c["run"], c["keep"]], layout=W.Layout(display="none"))
        for name in ("model", "method"):
            c[name].observe(self._on_source, names="value")
        c["compare"].observe(self._on_compare, names="value")
        for name in ("normalize", "by"):
            c[name].observe(self._on_display, names="value")
        for name in ("tasks", "k", "ci", "compare_mode", "select", "clip"):
            c[name].observe(self._on_view, names="value")
        c["threshold"].observe(self._on_slider, names="value")
        c["threshold_value"].observe(self._on_typed, names="value")
        c["detail_task"].observe(self._on_detail_task, names="value")
        c["curve"].observe(self._on_curve, names="value")
        c["show"].on_click(self._on_show)
        c["cancel"].on_click(self._on_cancel)
        c["run"].on_click(self._on_run)
        c["keep"].on_click(self._on_keep)
        self.widget = W.VBox(
            [
                W.HBox(
                    [c["model"], c["method"], c["compare"], c["compare_mode"]], layout=W.Layout(flex_flow="row wrap")
                ),
                W.HBox([c["normalize"], c["clip"], c["ci"]], layout=W.Layout(flex_flow="row wrap")),
                W.HBox([W.Label("Select"), c["select"], c["by"]], layout=W.Layout(flex_flow="row wrap")),
                W.HBox([self._threshold_box, self._k_box], layout=W.Layout(flex_flow="row wrap")),
                c["tasks"],
                self._ask_box,
                self._job_box,
                self.status,
                self.error,
                self.grid,
                self.curve_out,
                W.HTML("<b>Head details</b> — click a head in the grid, or fill in the form"),
                W.HBox(
                    [c["detail_task"], c["layer"], c["head"], c["item"], c["show"]],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                self.details_out,
            ],
            layout=W.Layout(width="100%"),
        )
        self._fill_items()
        self._update_compare_options()
        self._sync_selection_boxes()
        self._on_source()

    def _ipython_display_(self):
        show_widget(self.widget)

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
                    check_fit(scores, bridge, name, self._cross_model)
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

    @property
    def scores(self) -> HeadScores | None:
        return self._cache.get(self.shown) if self.shown else None

    def scores_for(self, model: str, method: str) -> HeadScores:
        """Scores of (model, method): cached, or computed now in this thread (``headlab.scoring.score``),
        task by task so that progress counts tasks and a cancel keeps the finished ones."""
        key = (model, method)
        if key in self._cache and model in self._loaded and self._cache[key] is not self._given:
            fingerprint = self._cache[key].model.fingerprint  # kept by the disk cache's rules: the same model
            if fingerprint is not None and fingerprint != model_fingerprint(self._loaded[model]):
                del self._cache[key]
        if key not in self._cache:
            kind, kwargs = self.methods[method]
            bridge = self.model(model)
            if hooks.hooks_active(bridge):
                raise ValueError(
                    f"hooks are on model {model!r} (mask_heads, steer or your own): the explorer maps the model as its "
                    "weights say, so it computes nothing until they are removed (leave the with-block first)"
                )
            tasks = list(self.task_objects().values())
            groups = [tasks] if scorers.get(kind).joint else [[t] for t in tasks]
            for i, group in enumerate(groups):
                self._job_at = (i, len(groups), group[0].name if len(group) == 1 else f"{len(group)} tasks")
                self._on_progress("", 0, 1)
                scoring.score(bridge, group, method=kind, progress=False, **kwargs)
            self._job_at = (len(groups), len(groups), "assembling")
            self._cache[key] = scoring.score(bridge, tasks, method=kind, progress=False, **kwargs)  # from cache
        return self._cache[key]

    def significant(self, scores: HeadScores | None = None) -> np.ndarray:
        """(task, layer, head) bool: ``stats.bootstrap(scores).significant``, computed once per scores."""
        scores = self.scores if scores is None else scores
        if id(scores) not in self._bootstraps:  # the entry keeps ``scores`` alive: its id stays its own
            self._bootstraps[id(scores)] = (scores, stats.bootstrap(scores))
        return self._bootstraps[id(scores)][1].significant

    # --- long jobs -------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) has finished."""
        job = self._job
        if job is not None:
            job.join(timeout)

    def _busy(self) -> bool:
        return self._job is not None and self._job.is_alive()

    def _start(self, model: str, method: str, confirmed: bool) -> None:
        """Compute (model, method) in a worker thread; unless ``confirmed``, estimate first and ask when it
        would take longer than ``ASK_ABOVE_S``."""

        def cancelled():
            self._revert_choice()
            self._notes.append(
                f"cancelled {method} on {model}: {self._job_at[0]} of {self._job_at[1]} tasks finished and "
                "cached; pick it again to go on from there"
            )
            if self.scores is not None:
                self._draw()
            else:  # nothing on screen yet: the note alone
                self.status.value, self._notes = html.escape(" ".join(self._notes)), []

        self._launch("loading the model", lambda: self._work(model, method, confirmed), cancelled, self._revert_choice)

    def _launch(self, label: str, work, cancelled, failed=None, done=None) -> None:
        """Run ``work()`` as the explorer's one job, in a worker thread: its progress on the bar, Cancel
        raising ``Cancelled`` inside it (then ``cancelled()``), any other error shown as the one error line
        (after ``failed()``), and ``done()`` at the end whatever happened. ``cancelled`` and ``failed`` run under
        the lock."""
        self._cancel.clear()
        self._job_at = (0, 1, label)
        self._set_job_visible(True)

        def run():
            try:
                work()
            except progress.Cancelled:
                with self._lock:
                    self._set_job_visible(False)
                    cancelled()
            except Exception as err:  # shown as one line, like every callback's error
                with self._lock:
                    self._set_job_visible(False)
                    if failed is not None:
                        failed()
                    self.error.value = f"<span style='color:#b00020'>⚠ {html.escape(one_line(err))}</span>"
            finally:
                self._set_job_visible(False)
                if done is not None:
                    done()

        self._job = threading.Thread(target=run, daemon=True)
        self._job.start()

    def _work(self, model: str, method: str, confirmed: bool) -> None:
        with progress.watching(self._on_progress):
            bridge = self.model(model)
        if not confirmed:
            kind, kwargs = self.methods[method]
            guess = scoring.estimate(bridge, list(self.task_objects().values()), method=kind, **kwargs)
            if guess.seconds > ASK_ABOVE_S:
                self._pending = (model, method)
                n = len(self.task_objects())
                self.ask.value = (
                    f"⏱ <b>{html.escape(method)}</b> on {html.escape(model)}: about "
                    f"<b>{duration(guess.seconds)}</b> here ({len(guess.tasks)} of {n} tasks to compute, "
                    "the rest cached). Run it?"
                )
                self._ask_box.layout.display = "flex"
                with self._lock:
                    self._revert_choice()  # the menus keep naming what is on screen meanwhile
                return
        with progress.watching(self._on_progress, model=bridge, stop=self._cancel.is_set):
            scores = self.scores_for(model, method)
        with self._lock:
            if self.controls["model"].value == model and self.controls["method"].value == method:
                self._show_source(model, method, scores)
            elif self._comparing() == (model, method):
                self._draw()

    def _on_progress(self, desc, done, total) -> None:
        """The watcher of the running job: overall fraction, "task i of n", and the cancel check."""
        if self._cancel.is_set():
            raise progress.Cancelled("stopped")
        i, n, name = self._job_at
        part = (done / total) if total else 0.0
        now = time.monotonic()
        if now - self._last_tick < 0.1 and done != total:
            return
        self._last_tick = now
        self.bar.value = min(1.0, (i + part) / max(n, 1))
        step = f" · {done}/{total}" if total and total > 1 else ""
        self.job_label.value = f"task {min(i + 1, n)} of {n} · {name}{step}"

    def _set_job_visible(self, on: bool) -> None:
        self._job_box.layout.display = "flex" if on else "none"
        for name in ("model", "method", "compare"):
            self.controls[name].disabled = on
        if on:
            self.bar.value, self.job_label.value = 0.0, "starting …"

    def _revert_choice(self) -> None:
        """Put the source menus back on what is shown (a cancelled or refused job changes nothing)."""
        if self.shown is None:
            return
        with self._quiet():
            self.controls["model"].value, self.controls["method"].value = self.shown

    @_guarded
    def _on_cancel(self, _=None) -> None:
        self._cancel.set()
        self.job_label.value = "cancelling …"

    @_guarded
    def _on_run(self, _=None) -> None:
        self._ask_box.layout.display = "none"
        model, method = self._pending
        self._pending = None
        with self._quiet():
            self.controls["model"].value, self.controls["method"].value = model, method
        self._start(model, method, confirmed=True)

    @_guarded
    def _on_keep(self, _=None) -> None:
        self._ask_box.layout.display = "none"
        self._pending = None
        self._revert_choice()

    # --- view ------------------------------------------------------------------------------------

    @contextmanager
    def _quiet(self):
        """Set controls from code: their observers stand by meanwhile."""
        before, self._muted = self._muted, True
        try:
            yield
        finally:
            self._muted = before

    def _selection(self) -> display.Selection:
        c = self.controls
        rule, by = c["select"].value, c["by"].value
        if rule == "threshold":
            return display.Selection(threshold=self._threshold_value(), by=by)
        if rule == "top_k":
            L, H = self.scores.shape[1:]
            k = c["k"].value
            if not 1 <= k <= L * H:
                raise ValueError(f"k must be between 1 and {L * H} (heads in the map), got {k}")
            return display.Selection(top_k=k, by=by)
        if rule == "elbow":
            return display.Selection(elbow=True, by=by)
        return display.Selection(by=by)

    def _threshold_value(self) -> float:
        value = self.controls["threshold_value"].value
        if value is None or not math.isfinite(value):
            raise ValueError(f"threshold must be a number, got {value!r}")
        return float(value)

    def _comparing(self):
        """(model, method) of the compared map, or None."""
        choice = self.controls["compare"].value
        if choice == NO_COMPARE:
            return None
        kind, name = choice.split(": ", 1)
        model, method = self.shown
        return (model, name) if kind == "method" else (name, method)

    def _update_compare_options(self) -> None:
        c = self.controls
        model, method = c["model"].value, c["method"].value
        options = [NO_COMPARE]
        options += [f"method: {m}" for m in self.methods if m != method]
        options += [f"model: {m}" for m in self.models if m != model]
        with self._quiet():
            keep = c["compare"].value if c["compare"].value in options else NO_COMPARE
            c["compare"].options = options
            c["compare"].value = keep
        c["compare_mode"].layout.display = "none" if keep == NO_COMPARE else "flex"

    def _sync_selection_boxes(self) -> None:
        rule = self.controls["select"].value
        self._threshold_box.layout.display = "flex" if rule == "threshold" else "none"
        self._k_box.layout.display = "flex" if rule == "top_k" else "none"

    def _keys(self) -> np.ndarray:
        """What the threshold compares, over the tasks shown: displayed values (|values| by |s|)."""
        scores, c = self.scores, self.controls
        idx = [scores.tasks.index(t) for t in c["tasks"].value] or list(range(len(scores.tasks)))
        shown = scores.normalized(c["normalize"].value)[idx]
        return np.abs(shown) if c["by"].value == "abs" else shown

    def _refit(self, note: bool) -> None:
        """Fit the threshold slider now if it is in use, else when it is picked (a redraw stays cheap)."""
        self._range_stale = self.controls["select"].value != "threshold"
        if not self._range_stale:
            self._fit_threshold(note)

    def _fit_threshold(self, note: bool) -> None:
        """Fit the log slider's range to the values shown; keep the typed threshold where it still falls
        inside it, else move it to the 80th percentile and say so."""
        c = self.controls
        key = self._keys()
        key = key[np.isfinite(key)]
        positive = key[key > 0]
        hi = float(positive.max()) if positive.size else 1.0
        lo = max(float(positive.min()) if positive.size else hi * 1e-4, hi * 1e-4)
        lo = lo if lo < hi else hi / 10
        old = c["threshold_value"].value if self._fitted else None  # the first fit picks the 80th percentile
        value = (
            old if old is not None and lo <= old <= hi else float(np.quantile(positive, 0.8)) if positive.size else hi
        )
        with self._quiet():
            slider = c["threshold"]
            slider.min, slider.max = math.log10(lo) - 1e-9, math.log10(hi) + 1e-9
            slider.step = (slider.max - slider.min) / 200
            slider.value = value
            c["threshold_value"].value = value
            c["unit"].value = display.unit(self.scores, c["normalize"].value)
        self._fitted = True
        if note and old is not None and value != old and c["select"].value == "threshold":
            self._notes.append(f"threshold {old:.3g} is outside the values shown: moved to {value:.3g}")

    def redraw(self) -> None:
        """Apply the controls to the scores shown (no recomputation) and send the new view to the grid."""
        with self._lock:
            if self.scores is None:
                return
            self._draw()

    def _draw(self) -> None:
        c = self.controls
        tasks = list(c["tasks"].value)
        if not tasks:
            self.grid.show({"spec": {"panels": [], "empty": "no task selected: tick at least one task"}})
            self._status([])
            raise ValueError("no task selected: tick at least one task (or press “all”)")
        normalize, sel, a = c["normalize"].value, self._selection(), self.scores
        sig = self.significant(a) if c["ci"].value else None
        other = self._comparing()
        b = self._cache.get(other) if other else None
        names = (self._source_name(self.shown), self._source_name(other) if other else "")
        if other and b is None:
            panels = display.task_panels(a, tasks, normalize, sel, sig)
            sources = [(self.shown, t) for t in tasks]
            self._notes.append(f"{names[1]} is not computed yet: showing {names[0]} alone")
            cols, pair = 4, False
        elif other and c["compare_mode"].value == "difference":
            panels = display.difference_panels(a, b, tasks, normalize, sel, names=("A", "B"))
            sources = [(self.shown, t) for t in tasks]
            cols, pair = 4, False
        elif other:
            mine = display.task_panels(a, tasks, normalize, sel, sig, suffix=" · A")
            theirs = display.task_panels(b, tasks, normalize, sel, None, suffix=" · B")
            panels = [p for pair_ in zip(mine, theirs) for p in pair_]
            sources = [s for t in tasks for s in ((self.shown, t), (other, t))]
            cols, pair = 4, True
        else:
            panels = display.task_panels(a, tasks, normalize, sel, sig)
            sources = [(self.shown, t) for t in tasks]
            cols, pair = 4, False
        scale = display.scale_of([p.shown for p in panels], normalize, self._clip_at(panels))
        self._version += 1
        self._panel_sources = sources
        self.grid.show(
            canvas.state(
                panels,
                scale,
                unit=display.unit(a, normalize),
                label=display.colorbar_label(a, normalize),
                cols=cols,
                pair=pair,
                version=self._version,
            )
        )
        self._status(panels, names if other else None)

    def _clip_at(self, panels) -> float | None:
        """The colour scale's limit for the *Scale* choice: a percentile of |displayed values| (None: full)."""
        q = self.controls["clip"].value
        if not q:
            return None
        values = np.abs(np.concatenate([p.shown.ravel() for p in panels]))
        values = values[np.isfinite(values)]
        limit = float(np.percentile(values, q)) if values.size else 0.0
        return limit if limit > 0 else None

    def _source_name(self, key) -> str:
        return f"{key[1]} on {key[0]}" if key else ""

    def _status(self, panels, names=None) -> None:
        c = self.controls
        n_all, shown = len(self.scores.tasks), len(c["tasks"].value)
        L, H = self.scores.shape[1:]
        sel = c["select"].value
        how = {"none": "no selection", "threshold": "threshold", "top_k": f"top {c['k'].value}", "elbow": "elbow"}[sel]
        by = "" if sel == "none" else (" by s" if c["by"].value == "value" else " by |s|")
        parts = [
            f"<b>{html.escape(self._source_name(self.shown))}</b>",
            f"{shown} of {n_all} tasks shown",
            f"{L} layers × {H} heads",
            f"colour: {html.escape(display.DISPLAYS[c['normalize'].value])}",
            f"selection: {how}{by}",
        ]
        if c["clip"].value:
            parts.append(f"scale clipped at the {c['clip'].value:g}th percentile of |v| (▲▼ mark the cells beyond)")
        if names:
            mode = "A − B" if c["compare_mode"].value == "difference" else "A | B side by side"
            parts.append(f"compared ({mode}): A = {html.escape(names[0])}, B = {html.escape(names[1])}")
        notes = "".join(f"<br><i>{html.escape(n)}</i>" for n in self._notes)
        self._notes = []
        self.status.value = " · ".join(parts) + notes

    def _clear_details(self, why: str) -> None:
        self._details_of = None
        if self.details_out.outputs:
            self.details_out.outputs = (shown_text(f"(head details cleared: {why})"),)
        self.grid.status = ""

    def _show_source(self, model: str, method: str, scores: HeadScores) -> None:
        """Put (model, method)'s scores on screen: new slider range, CI availability, compare menu, details
        cleared."""
        c = self.controls
        changed = self.shown is not None and self.shown != (model, method)
        self.shown = (model, method)
        try:
            stats.check_items(scores)
            reason = None
        except ValueError as err:
            reason = f"CI unavailable: {err}"
        with self._quiet():
            if not self._fitted:  # the first map shown: a default k it can hold
                c["k"].value = min(c["k"].value, scores.shape[1] * scores.shape[2])
            c["ci"].disabled, c["ci"].tooltip = reason is not None, reason or CI_TOOLTIP
            if reason and c["ci"].value:
                c["ci"].value = False
                self._notes.append(reason)
            c["model"].value, c["method"].value = model, method
        self._update_compare_options()
        self._fill_items()
        self._refit(note=changed)
        if changed:
            self._clear_details(f"the scores changed to {method} on {model}")
            self._show_curve(None, f"(curve cleared: the scores changed to {method} on {model})")
        self._draw()

    # --- callbacks -------------------------------------------------------------------------------

    @_guarded
    def _on_source(self, change=None) -> None:
        c = self.controls
        model, method = c["model"].value, c["method"].value
        if (model, method) in self._cache:
            self._show_source(model, method, self._cache[(model, method)])
            return
        if self._busy():
            self._revert_choice()
            raise ValueError("a job is running: wait for it or press Cancel before picking another")
        self._start(model, method, confirmed=False)

    @_guarded
    def _on_compare(self, change=None) -> None:
        if self.scores is None:
            return
        other = self._comparing()
        self.controls["compare_mode"].layout.display = "none" if other is None else "flex"
        if other is not None and other not in self._cache:
            if self._busy():
                with self._quiet():
                    self.controls["compare"].value = NO_COMPARE
                raise ValueError("a job is running: wait for it or press Cancel before comparing")
            self._start(*other, confirmed=False)
        self._draw()

    @_guarded
    def _on_display(self, change=None) -> None:
        if self.scores is None:
            return
        self._refit(note=True)
        self._draw()

    @_guarded
    def _on_view(self, change=None) -> None:
        if self.scores is None:
            return
        self._sync_selection_boxes()
        if change is not None and change.get("owner") is self.controls["select"] and self._range_stale:
            self._refit(note=True)
        if change is not None and change.get("owner") is self.controls["tasks"]:
            if self._details_of is not None and self._details_of not in change["new"]:
                self._clear_details("its task is no longer shown")
        self._draw()

    @_guarded
    def _on_slider(self, change=None) -> None:
        if self.scores is None:
            return
        with self._quiet():
            self.controls["threshold_value"].value = float(f"{self.controls['threshold'].value:.4g}")
        self._draw()

    @_guarded
    def _on_typed(self, change=None) -> None:
        if self.scores is None:
            return
        value = self._threshold_value()
        slider = self.controls["threshold"]
        if value > 0:
            with self._quiet():
                slider.value = min(max(value, 10**slider.min), 10**slider.max)
        self._draw()

    @_guarded
    def _on_detail_task(self, change=None) -> None:
        self._fill_items()

    def _fill_items(self) -> None:
        """The prompt picker lists the detail task's prompts (none while the Task objects are unknown)."""
        task = self.controls["detail_task"].value
        try:
            items = self.task_objects()[task].items if self._tasks is not None or self.scores is not None else []
        except TaskError:
            items = []  # details() says why when asked
        options = [(f"{i}: {it.prompt[:40]}", i) for i, it in enumerate(items)] or [("0", 0)]
        with self._quiet():
            self.controls["item"].options = options
            self.controls["item"].value = options[0][1]

    @_guarded
    def _on_show(self, button=None) -> None:
        c = self.controls
        self.details(c["detail_task"].value, c["layer"].value, c["head"].value, c["item"].value)

    def _on_grid_click(self, panel: int, layer: int, head: int) -> None:
        """A click on the canvas: the form follows the clicked head, then its details are shown."""
        if not 0 <= panel < len(self._panel_sources):
            return
        source, task = self._panel_sources[panel]
        c = self.controls
        with self._quiet():
            c["detail_task"].value, c["layer"].value, c["head"].value = task, layer, head
        self._fill_items()
        self._show_details(task, layer, head, source)

    @_guarded
    def _show_details(self, task, layer, head, source=None) -> None:
        self.details(task, layer, head, self.controls["item"].value, source=source)

    # --- faithfulness curve ----------------------------------------------------------------------

    @_guarded
    def _on_curve(self, change=None) -> None:
        if not self.controls["curve"].value:
            self._show_curve(None)
            return
        if self.scores is None:
            raise ValueError("no scores yet: pick a model and method that compute")
        if self._busy():
            with self._quiet():
                self.controls["curve"].value = False
            raise ValueError("a job is running: wait for it or press Cancel before drawing the curve")
        task, source = self.controls["detail_task"].value, self.shown

        def done():
            with self._quiet():
                if self.curve_out.outputs == () or "cancelled" in str(self.curve_out.outputs):
                    self.controls["curve"].value = False

        cancelled = lambda: self._show_curve(None, "(curve cancelled)")  # noqa: E731
        self._launch(f"faithfulness · {task}", lambda: self._curve_work(source, task), cancelled, done=done)

    def _curve_work(self, source, task: str) -> None:
        """``validation.faithfulness`` of the map on screen for ``task`` (in the worker thread; cancellable)."""
        from ..analysis.validation import KS, faithfulness
        from .curves import faithfulness_plot

        scores, bridge = self._cache[source], self.model(source[0])
        L, H = scores.shape[1:]
        ks = tuple(k for k in KS if k <= L * H // 2)
        with progress.watching(self._on_progress, model=bridge, stop=self._cancel.is_set):
            curves = faithfulness(
                bridge,
                {source[1]: scores},
                [self.task_objects()[task]],
                ks=ks,
                by=self.controls["by"].value,
                progress=True,
                cross_model=self._cross_model,
            )
        fig = faithfulness_plot(curves, task)
        k = self.controls["k"].value
        for ax in fig.axes:
            ax.axvline(k, color="0.5", lw=0.8, ls="--")
        with self._lock:
            if self.shown == source:
                self._show_curve(fig, f"{task} · {self._source_name(source)} · dashed line: k = {k}")

    def _show_curve(self, fig, caption: str = "") -> None:
        """The curve figure (None: none) with its caption, as widget state (see ``details``)."""
        outputs = ([shown_text(caption)] if caption else []) + ([shown_figure(fig)] if fig is not None else [])
        self.curve_out.outputs = tuple(outputs)
        self.curve = fig

    # --- head details ----------------------------------------------------------------------------

    def details(self, task: str, layer: int, head: int, item: int = 0, source=None) -> HeadDetails:
        """Score, rank and attention pattern (on the task's ``item``-th prompt) of head (layer, head) of the
        scores shown (``source``: another (model, method) on screen); also shown below the grid."""
        import torch

        from ..metrics import max_positions

        source = source or self.shown
        scores = self._cache.get(source) if source else None
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
        if self._busy():
            raise ValueError("a job is running on the model: head details after it ends (or press Cancel)")
        t = scores.tasks.index(task)
        self.grid.status = f"⏳ loading head details of L{layer}.H{head} · {task} …"
        bridge = self.model(source[0])
        items = self.task_objects()[task].items
        if not 0 <= item < len(items):
            raise ValueError(f"no item {item} in {task!r}: it has items 0–{len(items) - 1}")
        ids = prompt_ids(bridge.tokenizer, items[item].prompt)
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
        name = self._source_name(source)
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
            source=name,
            item=item,
        )
        # Written to the Output's state, not captured with `with out:` — a call from a cell then adds
        # nothing to that cell's own outputs (what nbval compares). The PNG goes in as base64 text: raw
        # bytes in widget state travel as binary buffers, which the output renderer cannot show.
        summary = html.escape(info.summary())
        self.details_out.outputs = (shown_text(info.summary(), f"<p>{summary}</p>"), shown_figure(fig))
        self.grid.status = f"details: L{layer}.H{head} · {task} · {name}"
        self._details_of = task
        c = self.controls
        with self._quiet():  # the form names the head shown
            if c["detail_task"].value != task:
                c["detail_task"].value = task
                self._fill_items()
            c["layer"].value, c["head"].value, c["item"].value = layer, head, item
        return info

    # --- sharing ---------------------------------------------------------------------------------

    def save_html(self, path, overwrite: bool = False) -> Path:
        """Write the grid on screen as a standalone HTML page (no kernel, no internet; hover works). An existing
        file is kept unless ``overwrite=True``; the path rules are ``headlab.files``'s, shared by every writer."""
        path = output_path(path, what="save_html()", suffixes=(".html", ".htm"), overwrite=overwrite)
        if self.scores is None or not self.grid.spec.get("panels"):
            raise ValueError("nothing to save: the grid shows no panel yet")
        note = html.unescape(self.status.value.split("<br>")[0].replace("<b>", "").replace("</b>", ""))
        page = canvas.page(self.grid.state(), title=f"headlab · {self._source_name(self.shown)}", note=note)
        return write_file(path, page.encode("utf-8"), overwrite=overwrite, what="save_html()")


def explorer(models=None, tasks=None, methods=None, scores=None, cross_model: bool = False) -> Explorer:
    """Build the dashboard (see ``Explorer``); a notebook cell ending in ``explorer()`` displays it."""
    return Explorer(models=models, tasks=tasks, methods=methods, scores=scores, cross_model=cross_model)
