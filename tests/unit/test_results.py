"""headlab.results: bad inputs to HeadScores (indexing, top, normalized, select, its constructor, save/load).

The cases' machinery and shared context: tests/unit/bad_inputs.py and tests/unit/conftest.py."""

import numpy as np
import pytest
from bad_inputs import Catalogue, H, L, hand_scores

from headlab.models import ModelInfo
from headlab.results import HeadScores

CASES = Catalogue("api:results")
bad, safe = CASES.bad, CASES.safe

bad(
    "task index out of range",
    lambda c: c.s[99],
    IndexError,
    r"task index 99 is out of range: these scores hold 2",
)
bad("unknown task", lambda c: c.s["Nope"], KeyError, r"no task 'Nope' in these scores")
bad("bool task", lambda c: c.s[True], TypeError, "not True")
bad("float task", lambda c: c.s[1.5], TypeError, "not float 1.5")
for k in (-1, 0, 2.5, "3", None):
    bad(f"top k={k!r}", lambda c, k=k: c.s.top("A", k=k), ValueError, "k must be")
bad("top_table k=0", lambda c: c.s.top_table(k=0), ValueError, "k must be ≥ 1, got 0")
bad("top_table decimals", lambda c: c.s.top_table(decimals=-1), ValueError, "decimals must be an int")
safe("top k beyond the heads", lambda c: c.s.top("A", k=100), lambda t, c: len(t) == L * H)
bad(
    "normalized unknown",
    lambda c: c.s.normalized("softmax"),
    ValueError,
    "unknown normalization 'softmax'",
)
bad("select unknown", lambda c: c.s.select(["Nope"]), KeyError, "no task 'Nope'")
bad("select none", lambda c: c.s.select([]), ValueError, "at least one task")
bad("select twice", lambda c: c.s.select(["A", "A"]), ValueError, "got a task twice")
safe("select one name", lambda c: c.s.select("B"), lambda s, c: s.tasks == ["B"])
info = ModelInfo("m", 2, 2, 2, 8, 32, 100)
for args, error, match in [
    ((np.zeros((1, 3, 2)), ["A"], info), ValueError, r"values has shape \(1, 3, 2\), expected \(1, 2, 2\)"),
    ((np.full((1, 2, 2), np.inf), ["A"], info), ValueError, "values hold ±inf .* task 'A' L0.H0"),
    ((np.zeros((2, 2, 2)), ["A", "A"], info), ValueError, "task names must be unique"),
    ((np.zeros((2, 2, 2)), "AB", info), TypeError, "not the string 'AB'"),
    ((np.zeros((1, 2, 2)), [3], info), TypeError, "task names must be non-empty strings"),
    ((np.zeros((1, 2, 2)), ["A"], {"n_layers": 2}), TypeError, "model must be a ModelInfo"),
    ((np.array([[["a", "b"], ["c", "d"]]]), ["A"], info), ValueError, "values must be numeric"),
]:
    bad(
        f"HeadScores {match[:30]}",
        lambda c, a=args: HeadScores(*a, "m", {}, [1] * len(a[1]), [0.0] * len(a[1]), np.zeros((len(a[1]), 1, 2, 2))),
        error,
        match,
    )
bad(
    "HeadScores n_examples",
    lambda c: HeadScores(np.zeros((1, 2, 2)), ["A"], info, "m", {}, [1, 1], [0.0], np.zeros((1, 1, 2, 2))),
    ValueError,
    r"n_examples has shape \(2,\), expected \(1,\)",
)
bad(
    "HeadScores per_example",
    lambda c: HeadScores(np.zeros((1, 2, 2)), ["A"], info, "m", {}, [1], [0.0], np.zeros((1, 2, 2))),
    ValueError,
    r"per_example has shape \(1, 2, 2\), expected \(1, items, 2, 2\)",
)
bad("save to an int", lambda c: c.s.save(42), ValueError, "save.. needs a file path, got 42")
bad(
    "load missing",
    lambda c: HeadScores.load(c.tmp / "none.npz"),
    FileNotFoundError,
    "no saved scores at",
)
safe(
    "NaN head: the task's other heads keep their fractions",
    lambda c: hand_scores([[[1.0, np.nan], [1.0, 2.0]]], ["A"]).normalized("fraction"),
    lambda f, c: np.isnan(f[0, 0, 1]) and np.allclose(f[0].ravel()[[0, 2, 3]], [0.25, 0.25, 0.5]),
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)


def test_a_missing_head_has_no_rank():
    """rank(): 1 = the highest score among the scored heads; a NaN head gets 0, never the last rank."""
    from headlab.testing import head_scores

    s = head_scores([[[0.5, np.nan], [2.0, -1.0]]], tasks=["A"])
    assert s.rank("A").tolist() == [[2, 0], [1, 3]]


def test_select_keeps_only_the_kept_tasks_entries():
    """A params entry keyed by task (per_task, task_hashes) keeps only the selected tasks; other params stay."""
    from headlab.testing import head_scores

    params = {"ablation": "resample", "per_task": {t: {"ablation": "mean"} for t in "ABC"}, "task_hashes": {}}
    params["task_hashes"] = {"A": "a1", "B": "b1", "C": "c1"}
    s = head_scores(np.zeros((3, 2, 2)), tasks=["A", "B", "C"], params=params).select(["C", "A"])
    assert s.params["per_task"] == {"C": {"ablation": "mean"}, "A": {"ablation": "mean"}}
    assert s.params["task_hashes"] == {"C": "c1", "A": "a1"} and s.params["ablation"] == "resample"
