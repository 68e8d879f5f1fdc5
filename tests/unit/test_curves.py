"""headlab.viz.curves: a faithfulness plot of curves that hold several tasks needs task=.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import numpy as np
import pytest
from bad_inputs import Catalogue

from headlab.viz.curves import faithfulness_plot as plot_curves

CASES = Catalogue("api:curves")
bad = CASES.bad


def two_task_curves():
    from headlab.analysis.validation import Faithfulness

    zeros = np.zeros
    return Faithfulness(
        ["a"],
        ["A", "B"],
        np.array([1, 2]),
        zeros(2),
        zeros(2),
        zeros((1, 2, 2)),
        zeros((1, 2, 2)),
        zeros((2, 2, 10)),
        zeros((2, 2, 10)),
    )


bad(
    "a task needed",
    lambda c: plot_curves(two_task_curves()),
    ValueError,
    r"these curves hold 2 tasks: name one as task=, one of \['A', 'B'\], or draw every task with "
    r"headlab.viz.curves.faithfulness_grid\(curves\)",
)
bad("unknown task", lambda c: plot_curves(two_task_curves(), "C"), KeyError, "no task 'C' in these curves")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
