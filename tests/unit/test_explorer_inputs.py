"""headlab.viz.explorer: bad models=, methods=, scores= and tasks=, bad head details, and the one line the
explorer shows in place of a traceback.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import html
import re
from dataclasses import replace

import numpy as np
import pytest
from bad_inputs import GOOD, Catalogue, hand_scores

from headlab.models import ModelLoadError
from headlab.tasks import Task, TaskError
from headlab.viz import explorer as widgets


class WidgetError(Exception):
    """The one line the explorer shows in place of a traceback."""


def shown_error(ex) -> None:
    """Raise the explorer's error line, if it shows one."""
    text = html.unescape(re.sub(r"<[^>]+>", "", ex.state.message)).removeprefix("⚠ ").strip()
    if text:
        raise WidgetError(text)


def explorer(c, scores=None, tasks=None, models=None, **kw):
    return widgets.explorer(models=models or {"tiny": c.model}, tasks=tasks, scores=scores, **kw)


CASES = Catalogue("explorer")
bad, safe = CASES.bad, CASES.safe

bad(
    "models a list",
    lambda c: widgets.explorer(models=[c.model], scores=c.toy_scores),
    ValueError,
    "models= takes a dict name → model",
)
bad(
    "models empty",
    lambda c: widgets.explorer(models={}, scores=c.toy_scores),
    ValueError,
    "at least one model",
)
bad(
    "models int key",
    lambda c: widgets.explorer(models={1: c.model}, scores=c.toy_scores),
    ValueError,
    "models= keys are the names",
)
bad(
    "unknown method",
    lambda c: explorer(c, c.toy_scores, methods=["gradient"]),
    ValueError,
    "unknown method 'gradient'",
)
bad("no methods", lambda c: explorer(c, c.toy_scores, methods=[]), ValueError, "at least one method")
bad(
    "methods an int",
    lambda c: explorer(c, c.toy_scores, methods=5),
    ValueError,
    "takes a list of method labels",
)
safe(
    "one method label",
    lambda c: explorer(c, c.toy_scores, methods="attribution · resample"),
    lambda ex, c: list(ex.controls["method"].options) == ["attribution · resample"] and ex.state.message == "",
)
bad("scores a str", lambda c: explorer(c, "scores.npz"), TypeError, "scores= takes HeadScores, not str")
bad(
    "scores of other tasks",
    lambda c: explorer(c, c.toy_scores, tasks=[c.partial]),
    ValueError,
    "give the same tasks",
)
safe(
    "scores of a method not in methods= get its entry",
    lambda c: explorer(c, c.toy_scores, methods=["ablation · zero"]),
    lambda ex, c: (
        ex.controls["method"].value == "attribution · resample"
        and list(ex.controls["method"].options) == ["ablation · zero", "attribution · resample"]
    ),
)
bad(
    "scores of another model shape",
    lambda c: explorer(c, hand_scores(np.ones((1, 2, 5)), ["Toy"]), tasks=[c.task]),
    ValueError,
    r"explorer\(scores=\) on model 'tiny': scores are of a 2 × 5 model \(tiny-3x4-d64-s0\) but the model is 3 × 4",
)
bad(
    "scores of another shape, model loaded lazily",
    lambda c: explorer(
        c, hand_scores(np.ones((1, 2, 5)), ["Toy"]), tasks=[c.task], models={"tiny": lambda: c.model}
    ).details("Toy", 0, 0),
    ValueError,
    "scores are of a 2 × 5 model",
)
bad(
    "user task named like a built-in: no built-in details",
    lambda c: explorer(c, c.mine_scores).details("Retrieval", 0, 0),
    TaskError,
    r"do not record being computed on the built-in items of \['Retrieval'\]: pass explorer\(tasks=",
)


def recompute_user_task(c):
    ex = explorer(c, c.mine_scores)
    ex.controls["method"].value = "attribution · zero"
    ex.wait(60)
    shown_error(ex)


bad(
    "user task named like a built-in: no built-in recompute",
    recompute_user_task,
    WidgetError,
    "these scores do not record being computed on the built-in items",
)
bad(
    "tasks= with other items than the scores",
    lambda c: explorer(c, c.mine_scores, tasks=[Task.from_records("Retrieval", [GOOD])]),
    ValueError,
    r"computed on other items than tasks= gives for \['Retrieval'\]",
)
bad(
    "non-built-in names without tasks=",
    lambda c: explorer(c, c.toy_scores).details("Toy", 0, 0),
    TaskError,
    r"unknown built-in task\(s\) \['Toy'\]: pass explorer\(tasks=",
)
safe(
    "user tasks given: details use them",
    lambda c: explorer(c, c.mine_scores, tasks=[c.mine]).details("Retrieval", 0, 0),
    lambda d, c: "".join(d.tokens[1:]) == c.mine.items[0].prompt,
)
bad(
    "details unknown task",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Nope", 0, 0),
    ValueError,
    "unknown task 'Nope'",
)
bad(
    "details float layer",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Toy", 0.5, 0),
    ValueError,
    "layer must be an int, got 0.5",
)
bad(
    "details head out of range",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Toy", 0, 9),
    ValueError,
    "no head L0.H9: layers are 0–2, heads 0–3",
)
bad(
    "details item out of range",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Toy", 0, 0, item=99),
    ValueError,
    "no item 99 in 'Toy': it has items 0–5",
)
bad(
    "model by an unknown name",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task], models={"m": "gpt-17"}).details("Toy", 0, 0),
    ModelLoadError,
    "unknown model alias 'gpt-17'",
)


def no_task_selected(c):
    ex = explorer(c, c.toy_scores, tasks=[c.task])
    ex.controls["tasks"].value = ()
    shown_error(ex)


bad(
    "no task selected",
    no_task_selected,
    WidgetError,
    "no task selected: tick at least one task",
)


def nan_explorer(c):
    values = c.toy_scores.values.copy()
    values[0, 0, 0] = np.nan
    s = c.toy_scores
    return explorer(
        c,
        replace(s, values=values),
        tasks=[c.task],
    )


safe(
    "NaN scores: slider and grid still work",
    nan_explorer,
    lambda ex, c: ex.state.message == "" and np.isfinite(ex.controls["threshold"].max),
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
