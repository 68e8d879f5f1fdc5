"""headlab.analysis.compare: agreement of two maps, task × task overlap, and relative-depth profiles across models."""

import numpy as np
import pandas as pd
import pytest
from bad_inputs import Catalogue, H, L, hand_scores
from matplotlib.figure import Figure

from headlab.analysis import compare
from headlab.scoring import score
from headlab.testing import head_scores
from headlab.viz import plot


def scores(values, tasks=None, name="toy"):
    """HeadScores of a hand-built (task, layer, head) map."""
    v = np.asarray(values, dtype=np.float64)
    T, L, H = v.shape
    return head_scores(v, tasks=tasks, model=name, params={"ablation": "resample"})


def test_compare_identical_maps():
    s = scores(np.random.default_rng(0).normal(size=(3, 4, 5)))
    table = compare.compare(s, s, k=6)
    assert list(table.index) == s.tasks and list(table.columns) == ["rho", "rho_top6", "jaccard_top6"]
    assert np.allclose(table.to_numpy(), 1)


def test_compare_exact_numbers_on_common_tasks():
    a = scores([[[4, 3, 2, 1]], [[1, 2, 3, 4]]], tasks=["A", "B"])
    b = scores([[[9, 9, 9, 9]], [[4, 3, 1, 2]]], tasks=["C", "A"])  # only "A" in common
    table = compare.compare(a, b, k=3)
    assert list(table.index) == ["A"]
    row = table.loc["A"]
    # ranks differ by 1 on two heads: ρ = 1 − 6·2 / (4·15); top-3 {0,1,2} vs {0,1,3}
    assert row["rho"] == pytest.approx(0.8) and row["rho_top3"] == pytest.approx(1.0)
    assert row["jaccard_top3"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no task in common"):
        compare.compare(a, scores([[[1, 2, 3, 4]]], tasks=["Z"]))
    with pytest.raises(ValueError, match="differ in shape"):
        compare.compare(a, scores(np.ones((1, 2, 2)), tasks=["A"]))


def test_compare_scatter_panels_and_rho_titles():
    rng = np.random.default_rng(1)
    a = scores(rng.normal(size=(3, 4, 5)))
    fig = plot.compare_scatter(a, a)
    assert isinstance(fig, Figure) and fig._repr_png_().startswith(b"\x89PNG")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [f"T{t}  ρ = 1.00" for t in range(3)]
    assert len(shown[0].collections[0].get_offsets()) == 20 and shown[0].get_xlabel() == "toy · attribution"
    one = plot.compare_scatter(a, a, task="T1", labels=("exact", "approx"))
    assert [ax.get_title() for ax in one.axes] == ["T1  ρ = 1.00"] and one.axes[0].get_ylabel() == "approx"


def test_task_overlap_exact_symmetric_unit_diagonal():
    s = scores([[[4, 3, 2, 1]], [[4, 3, 1, 2]], [[1, 4, 3, 2]]], tasks=["A", "B", "C"])
    m = compare.task_overlap(s, k=2)  # top-2: A {0,1}, B {0,1}, C {1,2}
    assert list(m.index) == list(m.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(m.to_numpy(), [[1, 1, 1 / 3], [1, 1, 1 / 3], [1 / 3, 1 / 3, 1]])
    big = compare.task_overlap(scores(np.random.default_rng(2).normal(size=(5, 6, 7))), k=10)
    np.testing.assert_allclose(np.diag(big), 1)
    np.testing.assert_allclose(big.to_numpy(), big.to_numpy().T)
    fig = plot.plot_matrix(m, title="Shared top-2 heads", label="Jaccard", vmin=0, vmax=1)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B", "C"] and ax.get_title() == "Shared top-2 heads"
    assert sorted(t.get_text() for t in ax.texts) == sorted(["1.00"] * 5 + ["0.33"] * 4)


def test_relative_depth_exact_profiles():
    shallow = scores([[[1, 0], [-3, 0]]])  # 2 layers: a quarter of |score| in layer 0
    d = compare.relative_depth(shallow, bins=4)
    assert d.index.names == ["task", "depth"]
    np.testing.assert_allclose(d.index.get_level_values("depth"), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(d["share"], [0.125, 0.125, 0.375, 0.375])
    np.testing.assert_allclose(d["peak"], [1 / 3, 1 / 3, 1, 1])
    split = compare.relative_depth(scores([[[1], [2], [5]]]), bins=2)  # layer 1 straddles depth 0.5
    np.testing.assert_allclose(split["share"], [0.25, 0.75])
    np.testing.assert_allclose(split["peak"], [0.4, 1.0])


def test_relative_depth_puts_any_depth_on_one_axis():
    deep, shallow = np.zeros((2, 30, 9)), np.zeros((2, 2, 4))
    deep[:, 29, 3] = shallow[:, 1, 0] = 1.0  # all importance in the last layer
    deep[1], shallow[1] = 1.0, 1.0  # task 1: uniform
    a, b = compare.relative_depth(scores(deep), bins=10), compare.relative_depth(scores(shallow), bins=10)
    assert a.index.equals(b.index)
    depth = a.loc["T0"].index.to_numpy()
    assert depth.min() > 0 and depth.max() < 1
    np.testing.assert_allclose(a.loc["T0", "share"], [0] * 9 + [1])
    np.testing.assert_allclose(b.loc["T0", "share"], [0] * 5 + [0.2] * 5)
    np.testing.assert_allclose(a.loc["T1", "share"], 0.1)
    np.testing.assert_allclose(b.loc["T1", "share"], 0.1)
    np.testing.assert_allclose(a["share"].groupby("task").sum(), 1)
    with pytest.raises(ValueError, match="bins"):
        compare.relative_depth(scores(deep), bins=0)


def test_cross_model_table_and_plot():
    a = scores([[[1], [2], [3], [4]]], tasks=["A"], name="deep")  # shares 0.1 … 0.4 over 4 bins
    b = scores([[[1], [3]], [[1], [1]]], tasks=["A", "B"], name="shallow")  # A: 0.125, 0.125, 0.375, 0.375
    table = compare.cross_model(a, b, bins=4)
    assert isinstance(table, pd.DataFrame) and list(table.index) == ["A"]
    assert table.loc["A", "rho_share"] == pytest.approx(4 / np.sqrt(20))  # ranks 1..4 vs 1.5, 1.5, 3.5, 3.5
    assert table.loc["A", "depth_a"] == 0.875 and table.loc["A", "depth_b"] == 0.625
    fig = plot.cross_model_plot(a, b, bins=4)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_xlabel() == "Relative depth" and ax.get_xlim() == (0, 1)
    assert ax.get_title() == "A  ρ = 0.89"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["deep (4 layers)", "shallow (2 layers)"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.125, 0.125, 0.375, 0.375])


def test_disagreements_still_rank_gaps():
    a = scores([[[4, 3, 2, 1]]])
    b = scores([[[1, 3, 2, 4]]])
    gaps = compare.disagreements(a, b, "T0", n=2)
    assert gaps[["head", "rank_a", "rank_b"]].values.tolist() == [[0, 1, 4], [3, 4, 1]]


def test_patch_path_ends_at_exact_resample_ablation(tiny_model, toy_task):
    from headlab.analysis.compare import patch_path

    exact = score(tiny_model, toy_task, method="ablation", ablation="resample", cache=False, progress=False)
    layer, head = np.unravel_index(np.abs(exact.values[0]).argmax(), exact.values[0].shape)
    curve = patch_path(tiny_model, toy_task, int(layer), int(head), alphas=(0, 0.5, 1))
    assert curve[0] == 0 and abs(curve[2]) > 1e-3
    np.testing.assert_allclose(curve[2], exact.values[0, layer, head], atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        patch_path(tiny_model, toy_task, 99, 0)


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

CASES = Catalogue("api:compare")
bad = CASES.bad

for k in (-1, 0, 1.5, 99):
    bad(f"compare k={k}", lambda c, k=k: compare.compare(c.s, c.other, k=k), ValueError, "k must be")
bad("compare a str", lambda c: compare.compare(c.s, "b"), TypeError, "b must be HeadScores .* not str")
bad(
    "compare no common task",
    lambda c: compare.compare(c.s, hand_scores(np.zeros((1, L, H)), ["Z"])),
    ValueError,
    "no task in common",
)
bad("compare shapes", lambda c: compare.compare(c.s, c.wide), ValueError, "differ in shape")
bad(
    "agreement missing task",
    lambda c: compare.agreement(c.s, c.other.select(["A"]), k=3),
    ValueError,
    r"b does not score task\(s\) \['B'\]",
)
bad(
    "disagreements n=0",
    lambda c: compare.disagreements(c.s, c.other, "A", n=0),
    ValueError,
    "n must be ≥ 1",
)
bad(
    "disagreements unknown task",
    lambda c: compare.disagreements(c.s, c.other, "Nope"),
    KeyError,
    "no task 'Nope'",
)
bad(
    "disagreements shapes",
    lambda c: compare.disagreements(c.s, c.wide, "A"),
    ValueError,
    "differ in shape",
)
for k in (0, -1, 13):
    bad(f"task_overlap k={k}", lambda c, k=k: compare.task_overlap(c.s, k=k), ValueError, "k must be")
bad(
    "relative_depth bins",
    lambda c: compare.relative_depth(c.s, bins=0),
    ValueError,
    "bins must be an int ≥ 1",
)
bad(
    "relative_depth a list",
    lambda c: compare.relative_depth([1]),
    TypeError,
    "scores must be HeadScores",
)
bad("cross_model a str", lambda c: compare.cross_model(c.s, "b"), TypeError, "b must be HeadScores")
for args, error, match in [
    ((0.5, 1), ValueError, "layer must be an int, got 0.5"),
    ((0, "1"), ValueError, "head must be an int, got '1'"),
    ((9, 0), ValueError, "head L9.H0 is outside this 3 × 4 model"),
]:
    bad(f"patch_path {args}", lambda c, a=args: compare.patch_path(c.model, c.task, *a), error, match)
bad(
    "patch_path builtin()",
    lambda c: compare.patch_path(c.model, {"Toy": c.task}, 0, 0),
    TypeError,
    "takes one Task, not dict",
)
bad(
    "patch_path alphas str",
    lambda c: compare.patch_path(c.model, c.task, 0, 0, alphas=["a"]),
    ValueError,
    "alphas must be a number",
)
bad(
    "patch_path alphas empty",
    lambda c: compare.patch_path(c.model, c.task, 0, 0, alphas=[]),
    ValueError,
    "alphas is empty",
)
bad(
    "patch_path alphas nan",
    lambda c: compare.patch_path(c.model, c.task, 0, 0, alphas=[np.nan]),
    ValueError,
    "alphas must be a finite number",
)
bad(
    "patch_path partial",
    lambda c: compare.patch_path(c.model, c.partial, 0, 0),
    ValueError,
    r"has no counterfactuals \(or only some items",
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)


def test_disagreements_never_list_a_missing_head():
    a = scores([[[4.0, 3.0, np.nan, 1.0]]], tasks=["A"])
    b = scores([[[1.0, 3.0, 4.0, np.nan]]], tasks=["A"])
    table = compare.disagreements(a, b, "A", n=4)
    assert table[["layer", "head"]].values.tolist() == [[0, 0], [0, 1]]  # heads 2 and 3 are missing in a map
    assert (table.rank_a > 0).all() and (table.rank_b > 0).all()
