"""headlab.analysis.selection: bad inputs to select_heads and elbow_count, and a NaN head that is never selected.

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import numpy as np
import pytest
from bad_inputs import Catalogue, hand_scores

from headlab.analysis.selection import elbow_count, select_heads

CASES = Catalogue("api:selection")
bad, safe = CASES.bad, CASES.safe

sel = lambda c, **kw: select_heads(c.s, "A", **kw)  # noqa: E731
for kw_, match in [
    ({"rule": "threshold", "threshold": "0.1"}, r"threshold must be a number, got '0\.1' \(str\)"),
    ({"rule": "threshold", "threshold": float("nan")}, "threshold must be a finite number, got nan"),
    ({"rule": "threshold", "threshold": float("inf")}, "threshold must be a finite number, got inf"),
    ({"rule": "threshold"}, "needs threshold="),
    ({"rule": "knee"}, "unknown rule 'knee'"),
    ({"by": "signed"}, "by must be 'abs' or 'value'"),
    ({"rule": "top_k"}, "needs k between 1 and 12"),
    ({"rule": "top_k", "k": 0}, "k must be from 1 to 12"),
    ({"rule": "top_k", "k": 99}, "k must be from 1 to 12"),
    ({"rule": "top_k", "k": 2.0}, "k must be a whole number"),
    ({"k": 5}, r"k=5 is given but rule='elbow' ignores it"),
    ({"threshold": 0.1}, r"threshold=0\.1 is given but rule='elbow' ignores it"),
]:
    bad(f"select_heads {kw_}", lambda c, k=kw_: sel(c, **k), ValueError, match)
bad("select_heads dict", lambda c: select_heads({"A": 1}, "A"), TypeError, "takes HeadScores, not dict")
bad(
    "select_heads task index",
    lambda c: select_heads(c.s, 7),
    IndexError,
    "task index 7 is out of range",
)
bad("elbow ascending", lambda c: elbow_count([1, 2, 3]), ValueError, "takes a descending curve")
bad("elbow NaN", lambda c: elbow_count([2, np.nan, 1]), ValueError, "finite values")
safe(
    "a NaN head is never selected",
    lambda c: select_heads(hand_scores([[[np.nan, 0.9], [0.5, 0.1]]], ["A"]), "A", "top_k", k=3),
    lambda hs, c: hs == [(0, 1), (1, 0), (1, 1)],
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
