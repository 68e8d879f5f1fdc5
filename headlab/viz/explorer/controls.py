"""The explorer's controls: views of its ``ViewState``, laid out around the grid.

A control that only changes the view is linked to its trait both ways (``traitlets.link``): the trait is the
truth, the control shows it. The Model, Method and Compare menus and the curve toggle show the state too, but
picking in them is a *request* (``on_pick``): the explorer puts a computed map on screen, or starts a job for one
that is not, and the menu keeps showing what is on screen until the map arrives. The job line is a view of the
running ``Job``: its question with *Run it* / *Not now*, then its bar, counter and *Cancel*.
"""

from __future__ import annotations

import html
import math

import ipywidgets as W
import traitlets

from .. import display
from .state import Job, ViewState
from .view import CLIP_OPTIONS

__all__ = ["CI_TOOLTIP", "Controls", "line"]

NORMALIZE_OPTIONS = tuple((label, key) for key, label in display.DISPLAYS.items())
SELECT_OPTIONS = (("off", "none"), ("threshold", "threshold"), ("top-k", "top_k"), ("elbow", "elbow"))
BY_OPTIONS = (("by s (signed)", "value"), ("by |s|", "abs"))
MARK_OPTIONS = (("on selected heads", "selected"), ("on all heads", "all"))
COMPARE_MODES = (("side by side", "side"), ("difference A − B", "difference"))
CI_TOOLTIP = "dot the heads whose 95% bootstrap CI over the task's items excludes 0"
ONE_LINE = "height:1.5em;line-height:1.5em;overflow:hidden;white-space:nowrap;text-overflow:ellipsis"


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


def line(text: str, warn: bool = False) -> str:
    """A fixed-height line of words (a warning in red)."""
    colour = "#b00020" if warn else "#333"
    return f"<div style='{ONE_LINE};color:{colour}' title='{html.escape(text, quote=True)}'>{html.escape(text)}</div>"


class Controls:
    """Every control (``widgets``: name → widget), bound to ``state``; ``on_pick(name, value)`` is called when
    the user picks in a request menu ("model", "method", "compare", "curve") or presses a job button ("run",
    "keep", "cancel", "show")."""

    def __init__(self, state: ViewState, task_names, on_pick):
        wide = {"description_width": "initial"}
        small = lambda w: W.Layout(width=w)  # noqa: E731
        fixed = lambda: W.Layout(width="auto", flex="0 0 auto")  # a job's buttons never shrink  # noqa: E731
        self.state, self.on_pick, self._showing = state, on_pick, False
        self.widgets = c = {
            "model": W.Dropdown(description="Model", style=wide),
            "method": W.Dropdown(description="Method", style=wide),
            "compare": W.Dropdown(description="Compare with", style=wide),
            "compare_mode": W.ToggleButtons(options=COMPARE_MODES, style={"button_width": "auto"}),
            "normalize": W.Dropdown(options=NORMALIZE_OPTIONS, description="Colour", style=wide),
            "clip": W.Dropdown(options=CLIP_OPTIONS, description="Scale", style=wide),
            "ci": W.ToggleButton(description="CI dots", tooltip=CI_TOOLTIP, layout=small("auto")),
            "marks": W.ToggleButtons(options=MARK_OPTIONS, style={"button_width": "auto"}),
            "select": W.ToggleButtons(options=SELECT_OPTIONS, style={"button_width": "auto"}),
            "by": W.ToggleButtons(options=BY_OPTIONS, style={"button_width": "auto"}),
            "threshold": W.FloatLogSlider(base=10, min=-4, max=0, step=0.02, readout=False, continuous_update=False),
            "threshold_value": W.FloatText(layout=small("110px"), step=None),
            "range": W.Label(""),
            "unit": W.Label(""),
            "k": W.IntText(description="k", layout=small("120px"), style=wide),
            "curve": W.ToggleButton(
                value=False,
                description="faithfulness curve",
                tooltip="the Head-details task's metric and accuracy with its top k heads masked, against "
                "layer-matched random k (10 draws)",
                layout=small("auto"),
            ),
            "tasks": TaskChips(task_names),
            "detail_task": W.Dropdown(options=list(task_names), description="Task", style=wide),
            "layer": W.IntText(value=0, description="Layer", layout=small("130px"), style=wide),
            "head": W.IntText(value=0, description="Head", layout=small("120px"), style=wide),
            "item": W.Dropdown(options=[("0", 0)], description="Prompt", style=wide, layout=small("340px")),
            "show": W.Button(description="Show head", icon="search", layout=small("auto")),
            "cancel": W.Button(description="Cancel", icon="stop", button_style="warning", layout=fixed()),
            "run": W.Button(description="Run it", button_style="primary", layout=fixed()),
            "keep": W.Button(description="Not now", layout=fixed()),
        }
        for name, trait in (
            ("compare_mode", "mode"),
            ("normalize", "normalize"),
            ("clip", "clip"),
            ("ci", "ci"),
            ("marks", "marks"),
            ("select", "select"),
            ("by", "by"),
            ("threshold_value", "threshold"),
            ("k", "k"),
            ("tasks", "tasks"),
        ):
            traitlets.link((state, trait), (c[name], "value"))
        for name in ("model", "method", "compare", "curve"):
            c[name].observe(self._picked, names="value")
        for name in ("run", "keep", "cancel", "show"):
            c[name].on_click(lambda _, name=name: on_pick(name, None))
        c["threshold"].observe(self._slid, names="value")
        state.observe(self._show_threshold, names="threshold")
        state.observe(self.show_state, names=["select", "compare", "curve"])
        state.observe(self._show_job, names="job")
        # one line each, as wide as the output whatever they say (the text is cut with "…", whole on hover)
        self.status = W.HTML(line(""), layout=W.Layout(overflow="hidden"))
        self.message = W.HTML(line(""), layout=W.Layout(overflow="hidden"))
        state.observe(lambda ch: setattr(self.message, "value", line(ch["new"], ch["new"].startswith("⚠"))), "message")
        self.question, self.counter = W.HTML(), W.Label("")
        self.bar = W.FloatProgress(value=0, min=0, max=1, layout=small("220px"))
        wrap = lambda: W.Layout(display="none", flex_flow="row wrap", align_items="center")  # noqa: E731
        self.ask_box = W.HBox([self.question, c["run"], c["keep"]], layout=wrap())
        self.job_box = W.HBox([self.bar, self.counter, c["cancel"]], layout=wrap())
        self._links = []
        self._threshold_box = W.HBox(
            [W.Label("Threshold"), c["threshold"], c["range"], c["threshold_value"], c["unit"]],
            layout=W.Layout(flex_flow="row wrap"),
        )
        self._k_box = W.HBox([c["k"], c["curve"]])
        self.show_state()

    def layout(self, grid, curve_out, details_out) -> W.VBox:
        """The dashboard: menus, view controls, tasks, the job line, status and message, the grid, the curve and
        the head-details form."""
        c = self.widgets
        row = lambda *ws: W.HBox(list(ws), layout=W.Layout(flex_flow="row wrap"))  # noqa: E731
        return W.VBox(
            [
                row(c["model"], c["method"], c["compare"], c["compare_mode"]),
                row(c["normalize"], c["clip"], c["ci"], W.Label("Marks"), c["marks"]),
                row(W.Label("Select"), c["select"], c["by"]),
                row(self._threshold_box, self._k_box),
                c["tasks"],
                W.VBox([self.ask_box, self.job_box], layout=W.Layout(min_height="36px")),
                self.status,
                self.message,
                grid,
                curve_out,
                W.HTML("<b>Head details</b> — click a head in the grid, or fill in the form"),
                row(c["detail_task"], c["layer"], c["head"], c["item"], c["show"]),
                details_out,
            ],
            layout=W.Layout(width="100%"),
        )

    # --- state → controls -------------------------------------------------------------------------

    def show_menus(self, models: list[tuple[str, str]], methods: list[str], compare: list[tuple[str, tuple]]) -> None:
        """The request menus' entries ((label, value) pairs), each showing the state's value."""
        s, c = self.state, self.widgets
        self._showing = True  # new options reset a menu's value: not a pick
        try:
            for name, options, value in (
                ("model", models, s.model),
                ("method", methods, s.method),
                ("compare", compare, s.compare),
            ):
                if list(c[name].options) != list(options):
                    c[name].options = options
                c[name].value = value
        finally:
            self._showing = False

    def show_range(self, lo: float, hi: float, unit: str) -> None:
        """The threshold slider's range (its ends written beside it) and the unit of displayed values."""
        c = self.widgets
        low, high = math.log10(lo) - 1e-9, math.log10(hi) + 1e-9
        slider = c["threshold"]
        if (slider.min, slider.max) != (low, high):
            with slider.hold_trait_notifications():
                slider.min, slider.max, slider.step = low, high, (high - low) / 200
        c["range"].value = f"range {lo:.3g} – {hi:.3g}"
        c["unit"].value = unit
        self._show_threshold()

    def _show_threshold(self, change=None) -> None:
        slider = self.widgets["threshold"]
        value = min(max(self.state.threshold, 10**slider.min), 10**slider.max)
        if not math.isclose(slider.value, value, rel_tol=1e-9):
            slider.value = value

    def show_state(self, change=None) -> None:
        s, c = self.state, self.widgets
        self._threshold_box.layout.display = "flex" if s.select == "threshold" else "none"
        self._k_box.layout.display = "flex" if s.select == "top_k" else "none"
        c["compare_mode"].layout.display = "flex" if s.compare else "none"
        if c["compare"].value != s.compare and s.compare in [v for _, v in c["compare"].options]:
            c["compare"].value = s.compare
        c["curve"].value = bool(s.curve)

    def _show_job(self, change) -> None:
        for link in self._links:
            link.unlink()
        if change["old"] is not None:
            change["old"].unobserve(self._asking, names="question")
        job: Job | None = change["new"]
        running = job is not None
        for name in ("model", "method", "compare", "curve"):
            self.widgets[name].disabled = running
        if job is None:
            self._links = []
            self.ask_box.layout.display = self.job_box.layout.display = "none"
            return
        self.bar.value, self.counter.value = 0.0, "starting …"
        self._links = [
            traitlets.dlink((job, "fraction"), (self.bar, "value")),
            traitlets.dlink((job, "counter"), (self.counter, "value")),
            traitlets.dlink((job, "question"), (self.question, "value"), self._question_html),
        ]
        job.observe(self._asking, names="question")
        self._asking()

    def _question_html(self, question: str) -> str:
        job = self.state.job
        what = html.escape(job.what) if job is not None else ""
        return f"<b>{what}</b>: {html.escape(question)}" if question else ""

    def _asking(self, change=None) -> None:
        job = self.state.job
        asking = job is not None and bool(job.question)
        self.ask_box.layout.display = "flex" if asking else "none"
        self.job_box.layout.display = "flex" if job is not None and not asking else "none"

    # --- controls → requests ----------------------------------------------------------------------

    def _picked(self, change) -> None:
        if self._showing:
            return
        name, s = change["owner"].description, self.state
        key = {"Model": "model", "Method": "method", "Compare with": "compare", "faithfulness curve": "curve"}[name]
        shown = {"model": s.model, "method": s.method, "compare": s.compare, "curve": bool(s.curve)}[key]
        if change["new"] != shown:
            self.on_pick(key, change["new"])

    def _slid(self, change) -> None:
        slider, s = self.widgets["threshold"], self.state
        if not math.isclose(change["new"], min(max(s.threshold, 10**slider.min), 10**slider.max), rel_tol=1e-9):
            s.threshold = float(f"{change['new']:.4g}")
