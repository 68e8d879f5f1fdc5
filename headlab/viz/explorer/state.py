"""The explorer's state, declared once: what the grid shows, how, and the job that is running.

``ViewState`` holds every choice the explorer makes: the maps on screen (map A = ``(model, method)``, map B =
``compare``, an optional second map), the view mode, colours, selection, tasks and marks, the curve and head
shown below the grid, and the running ``Job``. Every control is a view of one of these traits, and the grid is
redrawn from them and the store of computed maps — never from the controls.

A map that is not computed yet never enters the state: the explorer starts a ``Job`` for it, and the job
writes only its result into the store. When it ends the explorer puts the map on screen in the role it was
asked for (A or B); when it is cancelled or fails nothing is put there, so the state is the one from before
the job.
"""

from __future__ import annotations

import threading

import traitlets

from ..display import DISPLAYS

__all__ = ["Job", "VIEW_TRAITS", "ViewState"]

VIEW_TRAITS = (
    "model",
    "method",
    "compare",
    "mode",
    "normalize",
    "clip",
    "ci",
    "marks",
    "select",
    "by",
    "threshold",
    "k",
    "tasks",
)  # a change of any of these redraws the grid


class Job(traitlets.HasTraits):
    """One piece of work the explorer runs in a worker thread: ``what`` it computes, ``question`` (non-empty while
    it waits for *Run it* / *Not now*), then ``fraction`` done and a ``counter`` in words ("task 3 of 8 ·
    Retrieval · 120/540"); ``cancel`` is set by *Cancel*."""

    what = traitlets.Unicode()
    question = traitlets.Unicode("")
    fraction = traitlets.Float(0.0)
    counter = traitlets.Unicode("")

    def __init__(self, what: str, kind: str, role: str, target, estimate, work):
        super().__init__(what=what)
        self.kind = kind  # "score" (a map), "curve" or "details" (a head's pattern)
        self.role = role  # "A" or "B" for a map: where it goes once stored
        self.target = target  # (model, method); a curve's (model, method, task, by); a head's (…, layer, head, item)
        self.estimate = estimate  # estimate(job) → (seconds, what in words): loads the model, measures its rate
        self.work = work  # work(job) → the result, reporting progress into the job
        self.confirmed = False  # Run it was pressed (or nothing needed asking)
        self.steps = (0, 0)  # (finished, of): the tasks of a map, said when it is cancelled
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class ViewState(traitlets.HasTraits):
    """Every choice the explorer shows (see the module docstring). ``compare``: () or (model, method) of map B;
    ``clip``: the percentile of |displayed values| the colour scale ends at (0: the full range); ``marks``: CI
    dots and verified squares on the "selected" heads only (default) or on "all"; ``curve``: () or (model,
    method, task, by) of the faithfulness curve shown; ``details``: () or (model, method, task, layer, head,
    item) of the head shown; ``message``: the one line under the status, in words."""

    model = traitlets.Unicode()
    method = traitlets.Unicode()
    compare = traitlets.Tuple()
    mode = traitlets.Enum(("side", "difference"), "side")
    normalize = traitlets.Enum(tuple(DISPLAYS), "share")
    clip = traitlets.Float(99.0)
    ci = traitlets.Bool(False)
    marks = traitlets.Enum(("selected", "all"), "selected")
    select = traitlets.Enum(("none", "threshold", "top_k", "elbow"), "none")
    by = traitlets.Enum(("value", "abs"), "value")
    threshold = traitlets.Float(0.01)
    k = traitlets.Int(10)
    tasks = traitlets.Tuple()
    curve = traitlets.Tuple()
    details = traitlets.Tuple()
    job = traitlets.Instance(Job, allow_none=True)
    message = traitlets.Unicode("")

    @property
    def a(self) -> tuple[str, str]:
        """(model, method) of map A."""
        return (self.model, self.method)

    def snapshot(self) -> dict:
        """The view traits' values, to compare a state with the one before a job."""
        return {name: getattr(self, name) for name in VIEW_TRAITS}
