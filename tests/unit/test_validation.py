"""headlab.analysis.validation: bad k, n_random, mode, seed and argument order to validate and faithfulness, and
layer-matched random heads that cannot be drawn.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import numpy as np
import pytest
from bad_inputs import Catalogue, H, L, hand_scores

from headlab.analysis.validation import faithfulness, layer_matched_random, validate

CASES = Catalogue("api:validation")
bad = CASES.bad

elbow8 = lambda: hand_scores([np.r_[np.ones(9), np.zeros(L * H - 9)].reshape(L, H)], ["Toy"])  # noqa: E731
kwv = dict(n_random=10, progress=False)
bad(
    "k = all but one",
    lambda c: validate(c.model, c.toy_scores, c.task, k=11, **kwv),
    ValueError,
    r"k=11, but a 3 × 4 model leaves only 1 other heads .* the largest usable k is 6",
)
bad(
    "k = all",
    lambda c: validate(c.model, c.toy_scores, c.task, k=12, **kwv),
    ValueError,
    "leaves only 0 other heads .* largest usable k is 6",
)
bad(
    "k = 7 of 12",
    lambda c: validate(c.model, c.toy_scores, c.task, k=7, **kwv),
    ValueError,
    "largest usable k is 6",
)
bad(
    "elbow picks too many",
    lambda c: validate(c.model, elbow8(), c.task, **kwv),
    ValueError,
    r"the elbow picks 8 heads of 'Toy'.*largest usable k is 6",
)
bad(
    "k=0",
    lambda c: validate(c.model, c.toy_scores, c.task, k=0, **kwv),
    ValueError,
    "k must be from 1 to 12",
)
bad(
    "k=-1",
    lambda c: validate(c.model, c.toy_scores, c.task, k=-1, **kwv),
    ValueError,
    "k must be from 1",
)
bad(
    "n_random 3",
    lambda c: validate(c.model, c.toy_scores, c.task, n_random=3),
    ValueError,
    "at least 10",
)
bad(
    "n_random 10.5",
    lambda c: validate(c.model, c.toy_scores, c.task, n_random=10.5),
    ValueError,
    "at least 10",
)
bad(
    "mode",
    lambda c: validate(c.model, c.toy_scores, c.task, mode="drop", **kwv),
    ValueError,
    "unknown mode 'drop'",
)
bad(
    "mode scale without an eps",
    lambda c: validate(c.model, c.toy_scores, c.task, mode="scale", **kwv),
    ValueError,
    r"unknown mode 'scale' for validate, which needs an eps: use mask_heads\(model, heads, mode='scale', eps=\.\.\.\)",
)
bad(
    "seed",
    lambda c: validate(c.model, c.toy_scores, c.task, seed=-2, **kwv),
    ValueError,
    "seed must be",
)
bad(
    "by",
    lambda c: validate(c.model, c.toy_scores, c.task, by="signed", **kwv),
    ValueError,
    "by must be",
)
bad(
    "cross_task",
    lambda c: validate(c.model, c.toy_scores, c.task, cross_task="yes", **kwv),
    ValueError,
    "cross_task must be True or False",
)
bad(
    "scores of another model",
    lambda c: validate(c.model, hand_scores(np.ones((1, 2, 5)), ["Toy"]), c.task, k=2, **kwv),
    ValueError,
    r"scores are of a 2 × 5 model .* but the model is 3 × 4",
)
bad(
    "scores a dict",
    lambda c: validate(c.model, {}, c.task),
    TypeError,
    r"takes one HeadScores as scores=, not dict \(several maps: headlab\.faithfulness\(model, maps, tasks, ks=\.\.\.\) "
    r"draws their curves\)",
)
bad(
    "tasks and scores swapped",
    lambda c: validate(c.model, c.task, c.toy_scores, **kwv),
    TypeError,
    r"validate\(\) got tasks as scores=: the order is validate\(model, scores, tasks\)",
)
bad(
    "ks= for curves",
    lambda c: validate(c.model, c.toy_scores, c.task, ks=(1, 2), **kwv),
    ValueError,
    r"validate\(\) masks one k and returns a Validation: for the curves along many k call "
    r"headlab\.faithfulness\(model, maps, tasks, ks=\.\.\.\)",
)
bad(
    "faithfulness with tasks and scores swapped",
    lambda c: faithfulness(c.model, {"Toy": c.task}, c.toy_scores, ks=(1, 2)),
    TypeError,
    r"faithfulness\(\) got tasks as scores=: the order is faithfulness\(model, scores, tasks\)",
)
bad(
    "task not scored",
    lambda c: validate(c.model, c.toy_scores, c.partial, **kwv),
    ValueError,
    r"tasks \['Partial'\] are not in the scores",
)
bad(
    "layer_matched_random too many",
    lambda c: layer_matched_random(
        [(0, h) for h in range(4)] + [(1, 0), (1, 1), (1, 2)], 3, 4, np.random.default_rng(0)
    ),
    ValueError,
    "7 top heads leave only 5 other heads .* use at most 6",
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
