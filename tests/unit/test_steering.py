"""headlab.analysis.steering: bad alphas, scores, tasks, k and seed to steering_sweep.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import numpy as np
import pytest
from bad_inputs import Catalogue

from headlab.analysis.steering import steering_sweep

CASES = Catalogue("api:steering")
bad = CASES.bad

for alphas, match in [
    ([np.nan], "alphas must be a non-empty list of finite numbers"),
    (5, "alphas must be a list"),
    ([], "non-empty"),
]:
    bad(
        f"alphas {alphas!r}",
        lambda c, a=alphas: steering_sweep(c.model, c.toy_scores, c.task, alphas=a),
        ValueError,
        match,
    )
bad(
    "scores of another model",
    lambda c: steering_sweep(c.model, c.wide, c.task),
    ValueError,
    "scores are of a 2 × 5 model",
)
bad(
    "tasks and scores swapped",
    lambda c: steering_sweep(c.model, [c.task], c.toy_scores),
    TypeError,
    r"steering_sweep\(\) got tasks as scores=: the order is steering_sweep\(model, scores, tasks\)",
)
bad(
    "task not scored",
    lambda c: steering_sweep(c.model, c.toy_scores, c.partial),
    ValueError,
    "not in the scores",
)
bad(
    "k=0",
    lambda c: steering_sweep(c.model, c.toy_scores, c.task, k=0),
    ValueError,
    "k must be from 1 to 12",
)
bad(
    "seed",
    lambda c: steering_sweep(c.model, c.toy_scores, c.task, seed="x"),
    ValueError,
    "seed must be",
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
