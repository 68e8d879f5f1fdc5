"""headlab.analysis.stats: item bootstrap (reproducible, CIs, significance, selection frequency, NaN padding) and
the always / any heads across runs."""

import numpy as np
import pytest
from bad_inputs import Catalogue

from headlab.analysis import stats
from headlab.testing import head_scores


def from_items(items, n_examples=None, values=None, names=None):
    """HeadScores over per-item scores ``items`` (task, item, layer, head); rows past n_examples are padding."""
    items = np.asarray(items, dtype=np.float64)
    T, N, L, H = items.shape
    n_examples = [N] * T if n_examples is None else n_examples
    if values is None:
        values = np.stack([items[t, :n].mean(0) for t, n in enumerate(n_examples)])
    return head_scores(
        values, per_example=items, tasks=names, model="toy", method="ablation", params={"ablation": "zero"},
        n_examples=n_examples,
    )  # fmt: skip


def noisy(T=2, N=20, L=3, H=4, seed=0):
    return from_items(np.random.default_rng(seed).normal(0.5, 1.0, (T, N, L, H)))


def test_reproducible_from_seed():
    s = noisy()
    a, b, c = stats.bootstrap(s, n=50, seed=3), stats.bootstrap(s, n=50, seed=3), stats.bootstrap(s, n=50, seed=4)
    np.testing.assert_array_equal(a.runs, b.runs)
    np.testing.assert_array_equal(a.lo, b.lo)
    assert not np.array_equal(a.runs, c.runs)


def test_shapes_and_ci_contains_the_mean():
    s = noisy()
    boot = stats.bootstrap(s, n=100)
    assert boot.runs.shape == (100, 2, 3, 4) and boot.tasks == s.tasks
    for a in (boot.mean, boot.lo, boot.hi, boot.significant):
        assert a.shape == (2, 3, 4)
    assert boot.freq is None  # no threshold / top_k given
    np.testing.assert_allclose(boot.mean, s.per_example.mean(1, dtype=np.float64))
    assert np.all(boot.lo <= boot.mean) and np.all(boot.mean <= boot.hi) and np.all(boot.lo < boot.hi)


def test_constant_head_is_exact_and_significant_zero_head_is_not():
    items = np.random.default_rng(1).normal(size=(1, 12, 2, 2))
    items[0, :, 0, 0] = 0.375
    items[0, :, 0, 1] = 0.0
    boot = stats.bootstrap(from_items(items), n=64)
    assert boot.lo[0, 0, 0] == boot.hi[0, 0, 0] == boot.mean[0, 0, 0] == 0.375
    assert boot.significant[0, 0, 0]
    assert boot.lo[0, 0, 1] == boot.hi[0, 0, 1] == 0 and not boot.significant[0, 0, 1]


def test_selection_frequency():
    items = np.random.default_rng(2).normal(0, 0.1, (2, 15, 3, 4))
    items[:, :, 1, 2] += 5.0  # dominant in every item
    s = from_items(items)
    for rule in (dict(top_k=1), dict(threshold=0.3), dict(top_k=3, normalize="zscore")):
        boot = stats.bootstrap(s, n=80, **rule)
        assert boot.freq.shape == (2, 3, 4) and np.all((boot.freq >= 0) & (boot.freq <= 1))
        assert np.all(boot.freq[:, 1, 2] == 1)
    assert stats.bootstrap(s, n=80, top_k=1).freq.sum() == pytest.approx(2)  # one head per task per run


def test_nan_padding_is_never_drawn():
    items = np.random.default_rng(3).normal(size=(2, 10, 2, 3))
    items[1, 3:] = np.nan  # task 1 has 3 items, then padding
    boot = stats.bootstrap(from_items(items, n_examples=[10, 3]), n=50)
    assert np.isfinite(boot.runs).all() and np.isfinite(boot.lo).all()
    kept = items[1, :3].astype(np.float32)  # per_example is float32
    np.testing.assert_allclose(boot.mean[1], kept.mean(0, dtype=np.float64))
    sentinel = items.copy()
    sentinel[1, 3:] = 1e6  # rows past n_examples are ignored, NaN or not
    padded = stats.bootstrap(from_items(sentinel, n_examples=[10, 3]), n=50)
    np.testing.assert_array_equal(padded.runs, boot.runs)
    assert np.all(boot.runs[:, 1] <= kept.max(0) + 1e-12) and np.all(boot.runs[:, 1] >= kept.min(0) - 1e-12)


def runs_of(*maps):
    """One HeadScores per (task, layer, head) map: the runs of always_any."""
    return [from_items(np.asarray(m, dtype=np.float64)[:, None]) for m in maps]


def test_always_any_exact_masks():
    runs = runs_of([[[4, 3, 0, 0]]], [[[4, 0, 3, 0]]], [[[3, 4, 0, 0]]])  # 1 task, 1 layer, 4 heads
    for rule in (dict(top_k=2), dict(threshold=0.4), dict(threshold=3, normalize="none")):
        aa = stats.always_any(runs, **rule)
        assert aa.always.tolist() == [[[True, False, False, False]]]
        assert aa.any.tolist() == [[[True, True, True, False]]]
        np.testing.assert_allclose(aa.freq, [[[1, 2 / 3, 1 / 3, 0]]])
        assert aa.n_runs == 3 and aa.tasks == ["T0"]


def test_always_any_of_a_bootstrap_shares_the_rule():
    s = noisy(T=3, N=8)
    boot = stats.bootstrap(s, n=40, top_k=3)
    aa = stats.always_any(boot, top_k=3)
    np.testing.assert_array_equal(aa.freq, boot.freq)
    assert np.all(aa.always <= aa.any) and aa.n_runs == 40 and aa.tasks == s.tasks
    assert np.all(aa.always.sum((1, 2)) <= 3) and np.all(aa.any.sum((1, 2)) >= 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: stats.bootstrap(s.select(["T0"]), n=0), "n (resamples)"),
        (lambda s: stats.bootstrap(s, top_k=2, threshold=0.1), "one of them"),
        (lambda s: stats.bootstrap(s, top_k=0), "top_k must be"),
        (lambda s: stats.bootstrap(s, threshold=0.1, normalize="softmax"), "unknown normalize"),
        (lambda s: stats.bootstrap(from_items(np.ones((1, 1, 2, 2)))), "at least 2"),
        (
            lambda s: stats.bootstrap(from_items(np.ones((1, 3, 2, 2)), n_examples=[4], values=np.ones((1, 2, 2)))),
            "holds 3 items",
        ),
        (lambda s: stats.bootstrap(from_items(np.full((1, 3, 2, 2), np.nan), values=np.ones((1, 2, 2)))), "NaN among"),
        (lambda s: stats.always_any([s, s]), "one of them"),
        (lambda s: stats.always_any([s, s.select(["T1", "T0"])], top_k=1), "run 1 has tasks"),
        (lambda s: stats.always_any([s, noisy(L=2)], top_k=1), "run 1 has shape"),
        (lambda s: stats.always_any([], top_k=1), "at least one run"),
    ],
)
def test_errors_are_one_line(call, message):
    with pytest.raises(ValueError) as info:
        call(noisy(N=4))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_per_run_splits_rows_into_runs_for_always_any():
    items = np.zeros((1, 3, 2, 2))
    items[0, :, 0, 0] = 1.0  # every run: head (0, 0)
    items[0, 1, 1, 1] = 2.0  # run 1 only: head (1, 1) beats it
    runs = from_items(items).per_run()
    assert len(runs) == 3 and runs[1].values[0, 1, 1] == 2.0 and runs[1].params["run"] == 1
    aa = stats.always_any(runs, top_k=1)
    assert aa.always[0].tolist() == [[False, False], [False, False]]
    assert aa.any[0].tolist() == [[True, False], [False, True]]
    np.testing.assert_allclose(aa.freq[0], [[2 / 3, 0], [0, 1 / 3]])
    with pytest.raises(ValueError, match="different numbers of rows"):
        from_items(np.zeros((2, 3, 2, 2)), n_examples=[3, 2]).per_run()


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

CASES = Catalogue("api:stats")
bad = CASES.bad

for kw_, error, match in [
    ({"threshold": float("nan")}, ValueError, "threshold must be a finite number, got nan"),
    ({"threshold": float("-inf")}, ValueError, "threshold must be a finite number, got -inf"),
    ({"threshold": "0.1"}, ValueError, "threshold must be a number, got '0.1'"),
    ({"top_k": 0}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": 1, "threshold": 0.1}, ValueError, "give threshold or top_k"),
    ({"top_k": 1, "normalize": "softmax"}, ValueError, "unknown normalize 'softmax'"),
    ({"n": 0}, ValueError, r"n \(resamples\) must be an int ≥ 1"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int"),
    ({"seed": "a"}, ValueError, "seed must be a non-negative int, got 'a'"),
]:
    bad(f"bootstrap {kw_}", lambda c, k=kw_: stats.bootstrap(c.s, **k), error, match)
bad("bootstrap one item", lambda c: stats.bootstrap(c.other), ValueError, "has 1 item.*at least 2")
bad("bootstrap a dict", lambda c: stats.bootstrap({}), TypeError, "expected HeadScores, not dict")
bad("always_any one scores", lambda c: stats.always_any(c.s, top_k=1), TypeError, "not one HeadScores")
bad("always_any none", lambda c: stats.always_any([], top_k=1), ValueError, "at least one run")
bad("always_any a str run", lambda c: stats.always_any([c.s, "x"], top_k=1), TypeError, "run 1 is str")
bad("always_any int", lambda c: stats.always_any(5, top_k=1), TypeError, "not int")
bad("always_any no rule", lambda c: stats.always_any([c.s]), ValueError, "give threshold or top_k")
bad("always_any shapes", lambda c: stats.always_any([c.s, c.wide], top_k=1), ValueError, "run 1 has shape")
bad(
    "selected 1-d",
    lambda c: stats.selected(np.zeros(3), top_k=1),
    ValueError,
    r"\(\.\.\., layer, head\) arrays",
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
