"""``Explorer``: the state, the store of computed maps, the jobs that fill it, and the grid that shows them."""

from __future__ import annotations

import numbers
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import ipywidgets as W
import numpy as np
from IPython.display import display as show_widget

from ... import scorers, scoring
from ...analysis import stats
from ...cache import model_fingerprint
from ...engine import hooks, progress
from ...errors import InputError, InputTypeError
from ...files import output_path, write_file
from ...results import HeadScores
from ...tasks import TASK_NAMES, TaskError, as_task_list, builtin
from .. import canvas, display
from . import jobs, menus
from .controls import CI_TOOLTIP, Controls, line
from .details import HeadDetails, head_details, prompt_of, shown_figure, shown_text
from .state import VIEW_TRAITS, Job, ViewState
from .view import map_name, render, threshold_range

__all__ = ["Explorer", "explorer", "words"]

DEFAULT_MODEL = "smollm2-135m (embedded)"
ASKED = object()  # what a job's work returns when it stopped to ask first


def words(err: BaseException) -> str:
    """An error as the message line says it: its first line, in words (an unexpected failure says it failed)."""
    msg = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    return first if isinstance(err, (ValueError, TypeError, KeyError, TaskError)) else f"it failed: {first}"


class Explorer:
    """The dashboard: ``.widget`` (what a notebook shows), ``.state`` (the ``ViewState``: every choice, the
    controls are views of it), ``.store`` ((model, method) → the HeadScores computed), ``.controls`` (name →
    widget), ``.grid`` (the ``HeadGrid``), ``.scores`` (map A), ``.redraw()``, ``.significant()`` (the CI mask),
    ``.details(task, layer, head, item=0)``, ``.save_html(path)``, ``.wait()`` (until a running job ends).

    ``models``: name → a loaded model (a bridge, or one loaded with ``engine="nnsight" | "ndif"``), a name or
    folder for ``load_model``, or a callable returning one (called on first use).
    ``tasks``: Tasks (a mapping like ``builtin()`` or a list; default: the eight built-in tasks).
    ``methods``: labels of ``scorers.variants()`` or (method, variant) pairs (default: every registered variant); a
    model's Method menu lists those its engine runs.
    ``scores``: HeadScores of the first model and its method: shown at start, nothing computed; a map of another
    model (name or fingerprint: ``results.check_model``) is refused unless ``cross_model=True``.
    """

    def __init__(self, models=None, tasks=None, methods=None, scores=None, cross_model: bool = False):
        from ...models import load_model

        if models is not None and not isinstance(models, Mapping):
            raise InputError(
                f"models= takes a dict name → model (a bridge, a name for load_model, or a callable), not "
                f"{type(models).__name__}"
            )
        self.models = dict(models) if models is not None else {DEFAULT_MODEL: load_model}
        if not self.models:
            raise InputError("explorer() needs at least one model")
        bad = [k for k in self.models if not isinstance(k, str) or not k]
        if bad:
            raise InputError(f"models= keys are the names shown in the menu: non-empty strings, got {bad!r}")
        self.methods = menus.method_choices(methods)
        if not isinstance(cross_model, bool):
            raise InputError(f"cross_model must be True or False, got {cross_model!r}")
        self._cross_model = cross_model
        if scores is not None and not isinstance(scores, HeadScores):
            raise InputTypeError(f"scores= takes HeadScores, not {type(scores).__name__}")
        self._tasks = (
            None
            if tasks is None and scores is not None
            else {t.name: t for t in as_task_list(builtin() if tasks is None else tasks)}
        )
        names = list(self._tasks) if self._tasks is not None else list(scores.tasks)
        self._loaded, self._bootstraps, self.store, self.curves = {}, {}, {}, {}
        self._given = scores  # the map passed as scores=: checked once against its model, never recomputed
        self._lock = threading.RLock()
        self._batching, self._dirty, self._version, self._panel_maps = False, False, 0, []
        self._last_job: Job | None = None
        self.curve = None  # the faithfulness figure shown, if any
        self._ci_unavailable: str | None = None  # why map A has no CI (too few items), or None
        method, first = next(iter(self.methods)), next(iter(self.models))
        if scores is not None:
            if set(scores.tasks) != set(names):
                raise InputError(f"scores= has tasks {scores.tasks} but tasks= has {names}: give the same tasks")
            if self._tasks is not None:
                menus.check_tasks_match(scores, self._tasks)
            method, computed = menus.entry_of(scores)
            self.methods.setdefault(method, computed)  # shown under what computed it, in the menu if it was not
            entry = self.models[first]
            if menus.shape_of(entry) is not None:
                menus.check_fit(scores, entry, first, cross_model)  # a loaded model now; a lazy one when loaded
            self.store[(first, method)] = scores
        k = min(10, scores.shape[1] * scores.shape[2]) if scores is not None else 10
        self.state = ViewState(model=first, method=method, tasks=tuple(names), k=k)
        self.grid = canvas.HeadGrid()
        self.grid.on_click(self._on_grid_click)
        self.ui = Controls(self.state, names, self._on_pick)
        self.controls = self.ui.widgets
        self.status, self.message = self.ui.status, self.ui.message
        self.curve_out, self.details_out = W.Output(), W.Output()
        self.widget = self.ui.layout(self.grid, self.curve_out, self.details_out)
        self.controls["detail_task"].observe(lambda _: self._fill_items(), names="value")
        self.state.observe(self._changed, names=list(VIEW_TRAITS))
        self._fill_items()
        self._show_menus()
        if self.scores is not None:
            self._new_map()
            self.redraw()
        else:
            self._request("A", (first, method))

    def _ipython_display_(self):
        show_widget(self.widget)

    # --- data ------------------------------------------------------------------------------------

    def model(self, name: str):
        """The model behind ``name``, loading it on first use."""
        if name not in self._loaded:
            import torch

            from ...models import load_model

            entry = self.models[name]
            if isinstance(entry, str):  # a name or folder for load_model
                bridge = load_model(entry)
            else:
                bridge = entry if isinstance(entry, torch.nn.Module) or not callable(entry) else entry()
            for (model, _), scores in self.store.items():
                if model == name:
                    menus.check_fit(scores, bridge, name, self._cross_model)
            self._loaded[name] = bridge
        return self._loaded[name]

    def engine(self, name: str) -> str:
        """Where model ``name`` runs ("bridge", "nnsight", "ndif"), from the model once loaded, else its entry,
        else a stored map of it."""
        if name in self._loaded:
            return menus.engine_of(self._loaded[name])
        for (model, _), scores in self.store.items():
            if model == name:
                return menus.engine_of(scores.model)
        return menus.engine_of(self.models[name])

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
        """Map A, the scores on screen (None before the first map arrives)."""
        return self.store.get(self.state.a)

    @property
    def shown(self) -> tuple[str, str] | None:
        """(model, method) of map A, once it is on screen."""
        return self.state.a if self.scores is not None else None

    def stored(self, key) -> HeadScores | None:
        """The stored map of ``key`` = (model, method), None if absent or computed on weights since changed in
        place (a map given as ``scores=`` is the caller's: kept)."""
        scores, model = self.store.get(key), key[0]
        if scores is not None and model in self._loaded and scores is not self._given:
            fingerprint = scores.model.fingerprint  # kept by the disk cache's rules: the same model
            if fingerprint is not None and fingerprint != model_fingerprint(self._loaded[model]):
                del self.store[key]
                return None
        return scores

    def significant(self, scores: HeadScores | None = None) -> np.ndarray:
        """(task, layer, head) bool: ``stats.bootstrap(scores).significant``, computed once per scores."""
        scores = self.scores if scores is None else scores
        if id(scores) not in self._bootstraps:  # the entry keeps ``scores`` alive: its id stays its own
            self._bootstraps[id(scores)] = (scores, stats.bootstrap(scores))
        return self._bootstraps[id(scores)][1].significant

    # --- requests: a computed map goes on screen, another is a job -----------------------------------

    def _on_pick(self, name: str, value) -> None:
        """A request from a control (``Controls.on_pick``), answered in words on the message line."""
        with self._lock:
            try:
                self.state.message = ""
                if name in ("model", "method"):
                    key = (value, self.state.method) if name == "model" else (self.state.model, value)
                    self._request("A", key)
                elif name == "compare":
                    self._request("B", value)
                elif name == "curve":
                    self._request_curve(value)
                elif name == "run":
                    self._run(confirmed=True)
                elif name == "keep":
                    self.state.job = None
                elif name == "cancel":
                    self.cancel()
                elif name == "show":
                    c = self.controls
                    self._request_details(c["detail_task"].value, c["layer"].value, c["head"].value, c["item"].value)
            except Exception as err:  # a callback must never raise into the frontend
                self.state.message = f"⚠ {words(err)}"
            finally:
                self._show_menus()
                self.ui.show_state()

    def _request(self, role: str, key: tuple) -> None:
        """Show map ``key`` = (model, method) as A or B (``key`` () for B: no compare): at once if stored, else
        through a job; the state stays as it is until the map is in the store."""
        s = self.state
        if role == "B" and not key:
            s.compare = ()
            return
        if key[1] not in self.methods:
            raise InputError(f"unknown method {key[1]!r}: choose from {list(self.methods)}")
        engine = self.engine(key[0])
        if not menus.runs_on(self.methods[key[1]], engine):
            raise InputError(f"{key[1]} does not run on {key[0]}'s engine ({engine}): pick another method")
        if self.stored(key) is not None:
            self._put(role, key)
            return
        self._busy_check("computing another map")
        self._begin(Job(f"{map_name(key)}, for map {role}", "score", role, key, self._score_estimate, self._score_work))

    def _put(self, role: str, key: tuple) -> None:
        """Put stored map ``key`` on screen as ``role`` (the one place a map enters the state)."""
        s = self.state
        with self._batch():
            if role == "A":
                changed = s.a != key
                s.model, s.method = key
                if s.compare == key:
                    s.compare = ()
                if changed:
                    self._new_map(key)
            else:
                s.compare = key
            self._dirty = True

    def _busy_check(self, what: str) -> None:
        if self.state.job is not None:
            raise InputError(f"a job is running ({self.state.job.what}): wait for it or press Cancel before {what}")

    def _begin(self, job: Job) -> None:
        """Make ``job`` the running job: estimate it (loading the model first), ask when long, else run it."""
        self.state.job = job
        self._last_job = job
        self._run(confirmed=False)

    def _run(self, confirmed: bool) -> None:
        job = self.state.job
        if job is None:
            return
        job.confirmed = job.confirmed or confirmed
        job.question = ""

        def work(job):
            if not job.confirmed:
                seconds, what = job.estimate(job)
                if seconds > jobs.ASK_ABOVE_S:
                    job.question = f"about {jobs.duration(seconds)} here ({what}). Run it?"
                    return ASKED
            return job.work(job)

        jobs.run(job, work, self._finished, self._failed)

    def cancel(self) -> None:
        """Stop the running job (within one transformer block): the state stays as it was before it."""
        job = self.state.job
        if job is None:
            return
        job.cancel.set()
        job.counter = "cancelling …"
        if not job.running:  # still asking: nothing runs
            self.state.job = None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) has finished or stopped to ask."""
        job = self._last_job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)

    def _finished(self, job: Job, result) -> None:
        with self._lock:
            if result is ASKED:
                return  # the job line asks; Run it starts it again, confirmed
            self.state.job = None
            if job.kind == "score":
                self.store[job.target] = result
                self._put(job.role, job.target)
            elif job.kind == "curve":
                self.curves[job.target] = result
                self._show_curve(job.target)
            else:
                self._show_details(job.target, result)

    def _failed(self, job: Job, err: Exception) -> None:
        with self._lock:
            self.state.job = None
            if isinstance(err, progress.Cancelled):
                done, of = job.steps
                kept = f": {done} of {of} tasks finished and cached; pick it again to go on from there" if of else ""
                self.state.message = f"cancelled {job.what}{kept}"
            else:
                self.state.message = f"⚠ {words(err)}"
            self._show_menus()

    # --- scoring jobs ----------------------------------------------------------------------------

    def _score_estimate(self, job: Job) -> tuple[float, str]:
        model, method = job.target
        with jobs.watch(job, at=(0, 1, "loading the model")):
            bridge = self.model(model)
        self._show_menus()  # the model's engine is known now
        kind, kwargs = self.methods[method]
        tasks = list(self.task_objects().values())
        guess = scoring.estimate(bridge, tasks, method=kind, **kwargs)
        return guess.seconds, f"{len(guess.tasks)} of {len(tasks)} tasks to compute, the rest cached"

    def _score_work(self, job: Job) -> HeadScores:
        """Compute map ``job.target`` task by task (progress counts tasks, a cancel keeps the finished ones in
        the disk cache), then assemble it from the cache."""
        model, method = job.target
        kind, kwargs = self.methods[method]
        bridge = self.model(model)
        if hooks.hooks_active(bridge):
            raise InputError(
                f"hooks are on model {model!r} (mask_heads, steer or your own): the explorer maps the model as its "
                "weights say, so it computes nothing until they are removed (leave the with-block first)"
            )
        tasks = list(self.task_objects().values())
        groups = [tasks] if scorers.get(kind).joint else [[t] for t in tasks]
        job.steps = (0, len(groups))
        for i, group in enumerate(groups):
            name = group[0].name if len(group) == 1 else f"{len(group)} tasks"
            with jobs.watch(job, bridge, at=(i, len(groups), name)):
                scoring.score(bridge, group, method=kind, progress=False, **kwargs)
            job.steps = (i + 1, len(groups))
        return scoring.score(bridge, tasks, method=kind, progress=False, **kwargs)  # from the cache

    # --- what changes with map A ---------------------------------------------------------------------

    def _new_map(self, key=None) -> None:
        """Map A changed (to ``key``): CI availability, the default k, readouts of the old map cleared."""
        scores, c, s = self.scores, self.controls, self.state
        try:
            stats.check_items(scores)
            reason = None
        except ValueError as err:
            reason = f"CI unavailable: {err}"
        self._ci_unavailable = reason
        c["ci"].disabled, c["ci"].tooltip = reason is not None, reason or CI_TOOLTIP
        if reason and s.ci:
            s.ci = False
            s.message = reason
        if key is None:
            return
        why = f"the scores changed to {map_name(key)}"
        if s.details:
            self.details_out.outputs = (shown_text(f"(head details cleared: {why})"),)
            s.details = ()
            self.grid.status = ""
        if s.curve:
            s.curve = ()
            self.curve_out.outputs = (shown_text(f"(curve cleared: {why})"),)
            self.curve = None

    def _show_menus(self) -> None:
        s = self.state
        engine = self.engine(s.model)
        models = [(menus.model_label(m, self.engine(m)), m) for m in self.models]
        methods = [m for m, entry in self.methods.items() if menus.runs_on(entry, engine) or m == s.method]
        compare = menus.compare_options(self.models, methods, s.a)
        if s.compare and s.compare not in [v for _, v in compare]:
            s.compare = ()
        self.ui.show_menus(models, methods, compare)

    # --- redraw ------------------------------------------------------------------------------------

    @contextmanager
    def _batch(self):
        """Several state changes, one redraw (at the end of the outermost batch)."""
        outer, self._batching = self._batching, True
        try:
            yield
        finally:
            self._batching = outer
            if not outer and self._dirty:
                self._dirty = False
                self.redraw()

    def _changed(self, change) -> None:
        with self._lock, self._batch():
            self._dirty = True
            name, s = change["name"], self.state
            if name in ("model", "method", "compare"):
                self._show_menus()
            if name == "ci" and s.ci and self._ci_unavailable:
                s.ci, s.message = False, self._ci_unavailable
            if name in ("select", "normalize", "by", "tasks", "model", "method") and s.select == "threshold":
                self._fit_threshold()
            if name == "tasks" and s.details and s.details[2] not in change["new"]:
                self.details_out.outputs = (shown_text("(head details cleared: its task is no longer shown)"),)
                s.details = ()
            if name == "by" and s.curve and s.curve[3] != s.by:
                self._clear_curve("the selection now ranks by " + display.BY[s.by])

    def _fit_threshold(self) -> None:
        """A threshold outside the values shown moves to their 80th percentile, and says so."""
        if self.scores is None or not self.state.tasks:
            return
        lo, hi = threshold_range(self.scores, self.state)
        old = self.state.threshold
        if not lo <= old <= hi:
            key = self.scores.normalized(self.state.normalize)
            key = np.abs(key) if self.state.by == "abs" else key
            positive = key[np.isfinite(key) & (key > 0)]
            self.state.threshold = float(f"{np.quantile(positive, 0.8) if positive.size else hi:.4g}")
            self.state.message = f"threshold {old:.3g} is outside the values shown: moved to {self.state.threshold:.3g}"

    def redraw(self) -> None:
        """Draw the state over the store on the grid (no recomputation); an impossible view is the message."""
        with self._lock:
            if self.scores is None:
                return
            self._version += 1
            try:
                drawn = render(self.state, self.store, self.significant, self._version)
            except ValueError as err:
                if not self.state.tasks:
                    self.grid.show({"spec": {"panels": [], "empty": "no task selected: tick at least one task"}})
                self.state.message = f"⚠ {words(err)}"
                return
            if self.state.message.startswith("⚠"):
                self.state.message = ""
            self._panel_maps = drawn.panel_maps
            self.grid.show(drawn.grid)
            self.ui.status.value = line(drawn.status)
            self.ui.show_range(*drawn.range, display.unit(self.scores, self.state.normalize))

    # --- faithfulness curve ----------------------------------------------------------------------

    def _request_curve(self, on: bool) -> None:
        s = self.state
        if not on:
            self._clear_curve(None)
            return
        if self.scores is None:
            raise InputError("no scores yet: pick a model and method that compute")
        if s.select != "top_k":
            raise InputError("the faithfulness curve masks the top k heads: pick Select top-k first")
        task = self.controls["detail_task"].value
        key = (*s.a, task, s.by)
        if key in self.curves:
            self._show_curve(key)
            return
        self._busy_check("drawing the curve")
        self._begin(Job(f"faithfulness curve of {task}", "curve", "", key, self._curve_estimate, self._curve_work))

    def _curve_ks(self) -> tuple[int, ...]:
        from ...analysis.validation import KS

        L, H = self.scores.shape[1:]
        return tuple(k for k in KS if k <= L * H // 2)

    def _curve_estimate(self, job: Job) -> tuple[float, str]:
        model, _, task, _ = job.target
        with jobs.watch(job, at=(0, 1, "loading the model")):
            bridge = self.model(model)
        n = len(self._curve_ks())
        seconds = jobs.curve_seconds(bridge, self.task_objects()[task], n)
        return seconds, f"{1 + n * (1 + jobs.DRAWS)} masked runs of {task}'s items"

    def _curve_work(self, job: Job):
        """``validation.faithfulness`` of map A for the task (cancellable), drawn by ``curves.faithfulness_plot``."""
        from ...analysis.validation import faithfulness
        from ..curves import faithfulness_plot

        model, method, task, by = job.target
        bridge = self.model(model)
        with jobs.watch(job, bridge, at=(0, 1, f"faithfulness · {task}")):
            curves = faithfulness(
                bridge,
                {method: self.store[(model, method)]},
                [self.task_objects()[task]],
                ks=self._curve_ks(),
                draws=jobs.DRAWS,
                by=by,
                progress=True,
                cross_model=self._cross_model,
            )
        return faithfulness_plot(curves, task)

    def _show_curve(self, key) -> None:
        """Show curve ``key`` = (model, method, task, by) if it is of map A, a dashed line at the k chosen."""
        s = self.state
        if key[:2] != s.a:
            return
        fig, k = self.curves[key], s.k
        for ax in fig.axes:
            for old in [ln for ln in ax.lines if ln.get_gid() == "k"]:
                old.remove()
            ax.axvline(k, color="0.5", lw=0.8, ls="--", gid="k")
        caption = f"{key[2]} · {map_name(key[:2])} · dashed line: k = {k}"
        self.curve_out.outputs = (shown_text(caption), shown_figure(fig))
        self.curve = fig
        s.curve = key

    def _clear_curve(self, why: str | None) -> None:
        if self.state.curve:
            self.curve_out.outputs = (shown_text(f"(curve cleared: {why})"),) if why else ()
        self.state.curve = ()
        self.curve = None

    # --- head details ----------------------------------------------------------------------------

    def _fill_items(self) -> None:
        """The prompt picker lists the detail task's prompts (none while the Task objects are unknown)."""
        task = self.controls["detail_task"].value
        try:
            items = self.task_objects()[task].items if self._tasks is not None or self.scores is not None else []
        except TaskError:
            items = []  # details() says why when asked
        options = [(f"{i}: {it.prompt[:40]}", i) for i, it in enumerate(items)] or [("0", 0)]
        self.controls["item"].options = options
        self.controls["item"].value = options[0][1]

    def _on_grid_click(self, panel: int, layer: int, head: int) -> None:
        """A click on the canvas: the form follows the clicked head, then its details come as a job."""
        with self._lock:
            if not 0 <= panel < len(self._panel_maps):
                return
            map_id, task = self._panel_maps[panel]
            c = self.controls
            c["detail_task"].value, c["layer"].value, c["head"].value = task, layer, head
            try:
                self.state.message = ""
                self._request_details(task, layer, head, c["item"].value, map_id)
            except Exception as err:
                self.state.message = f"⚠ {words(err)}"
                self.grid.status = ""

    def _request_details(self, task, layer, head, item, map_id=None) -> None:
        """Head details as a job (one pass of one prompt: asked about first only where that is slow)."""
        key = self._head_key(task, layer, head, item, map_id)
        self._busy_check("asking for head details")
        what = f"head details of L{layer}.H{head} · {task}"
        self._begin(Job(what, "details", "", key, self._details_estimate, self._details_work))

    def _head_key(self, task, layer, head, item, map_id) -> tuple:
        """(model, method, task, layer, head, item) of a head of a map on screen, refused in one line if there
        is no such head."""
        map_id = map_id or self.shown
        scores = self.store.get(map_id) if map_id else None
        if scores is None:
            raise InputError("no scores yet: pick a model and method that compute")
        if not isinstance(task, str) or task not in scores.tasks:
            raise InputError(f"unknown task {task!r}: choose from {scores.tasks}")
        _, L, H = scores.shape
        for name, value in (("layer", layer), ("head", head), ("item", item)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InputError(f"{name} must be an int, got {value!r}")
        if not (0 <= layer < L and 0 <= head < H):
            raise InputError(f"no head L{layer}.H{head}: layers are 0–{L - 1}, heads 0–{H - 1}")
        return (*map_id, task, layer, head, item)

    def _details_estimate(self, job: Job) -> tuple[float, str]:
        model, _, task, *_ = job.target
        with jobs.watch(job, at=(0, 1, "loading the model")):
            bridge = self.model(model)
        return jobs.details_seconds(bridge, self.task_objects()[task]), "one pass of one prompt"

    def _details_work(self, job: Job) -> HeadDetails:
        model, method, task, layer, head, item = job.target
        bridge = self.model(model)
        with jobs.watch(job, bridge, at=(0, 1, f"L{layer}.H{head} · {task}")):
            return self._compute_details(job.target, bridge)

    def _compute_details(self, key, bridge) -> HeadDetails:
        model, method, task, layer, head, item = key
        the_task = self.task_objects()[task]
        prompt_of(bridge, the_task, item)
        scores, name = self.store[(model, method)], map_name((model, method))
        return head_details(bridge, scores, the_task, layer, head, item, self.state.normalize, name)

    def _show_details(self, key, info: HeadDetails) -> None:
        """Head details below the grid, the form naming the head (a map no longer on screen: dropped)."""
        model, method, task, layer, head, item = key
        if (model, method) not in (self.state.a, self.state.compare):
            return
        # Written to the Output's state, not captured with `with out:` — a call from a cell then adds nothing to
        # that cell's own outputs (what nbval compares).
        shown = (shown_text(info.summary(), f"<p>{info.summary()}</p>"),)
        self.details_out.outputs = shown + ((shown_figure(info.figure),) if info.figure is not None else ())
        self.grid.status = f"details: L{layer}.H{head} · {task} · {info.map_name}"
        self.state.details = key
        c = self.controls
        if c["detail_task"].value != task:
            c["detail_task"].value = task
        c["layer"].value, c["head"].value, c["item"].value = layer, head, item

    def details(self, task: str, layer: int, head: int, item: int = 0, map_id=None) -> HeadDetails:
        """Score, rank and attention pattern (on the task's ``item``-th prompt) of head (layer, head) of map A
        (``map_id``: another (model, method) on screen), computed now in this thread; also shown below the grid.
        A click or *Show head* asks for the same as a job."""
        key = self._head_key(task, layer, head, item, map_id)
        self._busy_check("asking for head details")
        self.grid.status = f"⏳ loading head details of L{layer}.H{head} · {task} …"
        info = self._compute_details(key, self.model(key[0]))
        self._show_details(key, info)
        return info

    # --- sharing ---------------------------------------------------------------------------------

    def save_html(self, path, overwrite: bool = False) -> Path:
        """Write the grid on screen as a standalone HTML page (no kernel, no internet; hover works). An existing
        file is kept unless ``overwrite=True``; the path rules are ``headlab.files``'s, shared by every writer."""
        path = output_path(path, what="save_html()", suffixes=(".html", ".htm"), overwrite=overwrite)
        if self.scores is None or not self.grid.spec.get("panels"):
            raise InputError("nothing to save: the grid shows no panel yet")
        note = render(self.state, self.store, self.significant, self._version).status
        page = canvas.page(self.grid.state(), title=f"headlab · {map_name(self.shown)}", note=note)
        return write_file(path, page.encode("utf-8"), overwrite=overwrite, what="save_html()")


def explorer(models=None, tasks=None, methods=None, scores=None, cross_model: bool = False) -> Explorer:
    """Build the dashboard (see ``Explorer``); a notebook cell ending in it displays it."""
    return Explorer(models=models, tasks=tasks, methods=methods, scores=scores, cross_model=cross_model)
