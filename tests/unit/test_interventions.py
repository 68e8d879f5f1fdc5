"""headlab.analysis.interventions: bad heads, modes and means to mask_heads, bad directions to steer, bad
head_means calls.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import numpy as np
import pytest
from bad_inputs import Catalogue

from headlab.analysis.interventions import head_means, mask_heads, steer
from headlab.tasks import TaskError

CASES = Catalogue("api:interventions")
bad = CASES.bad


def masked(c, heads, **kw):
    with mask_heads(c.model, heads, **kw):
        pass


for heads, match in [
    ([(0.5, 1)], r"heads\[0\] = \(0\.5, 1\): layer and head must be ints, got 0\.5"),
    ([(0,)], r"heads\[0\] = \(0,\) is not a \(layer, head\) pair"),
    ((0, 1), r"heads=\(0, 1\) is one pair: pass a list of pairs, \[\(0, 1\)\]"),
    ([(0, 1, 2)], r"heads\[0\] = \(0, 1, 2\) is not a \(layer, head\) pair"),
    (None, "heads must be a list of"),
    (5, "heads must be a list of .* not int"),
    ("01", "heads must be a list of"),
    ([(9, 0)], r"head \(9, 0\) is outside this 3 × 4 model"),
    ([(0, -1)], r"head \(0, -1\) is outside"),
    ([(True, 0)], "layer and head must be ints, got True"),
]:
    bad(f"mask_heads {heads!r}", lambda c, h=heads: masked(c, h), ValueError, match)
for kw_, match in [
    ({"mode": "drop"}, "unknown mode 'drop'"),
    ({"mode": "mean"}, "mode='mean' needs means="),
    ({"mode": "scale", "eps": "a"}, "eps must be a finite number, got 'a'"),
    ({"mode": "scale", "eps": float("nan")}, "eps must be a finite number, got nan"),
    ({"mode": "mean", "means": np.zeros((2, 2, 2))}, r"means has shape \(2, 2, 2\), expected \(3, 4, 16\)"),
    ({"mode": "mean", "means": np.full((3, 4, 16), np.nan)}, "means holds NaN or inf"),
    ({"mode": "mean", "means": "x"}, "means must be a numeric"),
]:
    bad(f"mask_heads {kw_!r:.50}", lambda c, k=kw_: masked(c, [(0, 1)], **k), ValueError, match)


def steered(c, directions, alpha=1.0):
    with steer(c.model, directions, alpha):
        pass


for dirs, alpha, match in [
    ([((0, 1), np.zeros(16))], 1.0, "directions must be a dict"),
    ({(0, 1): np.zeros(16)}, float("nan"), "alpha must be a finite number, got nan"),
    ({(0, 1): np.zeros(16)}, "2", "alpha must be a finite number"),
    ({(0, 1): np.zeros(3)}, 1.0, r"direction of head \(0, 1\) must be 16 finite numbers"),
    ({(0, 1): np.full(16, np.inf)}, 1.0, "must be 16 finite numbers"),
    ({(7, 1): np.zeros(16)}, 1.0, r"head \(7, 1\) is outside"),
    ({0: np.zeros(16)}, 1.0, r"heads\[0\] = 0 is not a \(layer, head\) pair"),
]:
    bad(f"steer {match[:30]}", lambda c, d=dirs, a=alpha: steered(c, d, a), ValueError, match)
bad(
    "head_means batch_size",
    lambda c: head_means(c.model, c.task, batch_size=0),
    ValueError,
    "batch_size must be a positive int",
)
bad(
    "head_means too long",
    lambda c: head_means(c.model, c.long),
    ValueError,
    "item 0's prompt is 301 tokens but the model takes at most 256",
)
bad("head_means a str", lambda c: head_means(c.model, "Toy"), TaskError, "not the string 'Toy'")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
