"""headlab.viz.plot: grid layout, axes, colour bar, selection, in-place updates, errors, saving."""

import numpy as np
import pandas as pd
import pytest
from bad_inputs import Catalogue, H, L, hand_scores
from matplotlib.figure import Figure

from headlab.analysis import stats
from headlab.testing import head_scores
from headlab.viz import plot

NAMES = [
    "Knowledge Recall",
    "Retrieval",
    "Logical Reasoning",
    "Decision-making",
    "Semantic Understanding",
    "Syntactic Understanding",
    "Inference",
    "Math Calculation",
]


def make_scores(n_tasks=8, L=30, H=9, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n_tasks, L, H))
    v = np.abs(v) if positive else v
    return head_scores(v, per_example=np.zeros((n_tasks, 1, L, H)), tasks=NAMES[:n_tasks], model="x")


def visible_axes(fig):
    view = fig._headlab_view
    return [ax for ax in view.axes if ax.get_visible()]


@pytest.mark.parametrize(
    "n, shape",
    [
        (1, (1, 1)),
        (2, (1, 2)),
        (3, (1, 3)),
        (4, (1, 4)),
        (5, (2, 3)),
        (6, (2, 3)),
        (7, (2, 4)),
        (8, (2, 4)),
        (9, (3, 3)),
        (12, (3, 4)),
    ],
)
def test_grid_shape(n, shape):
    assert plot.grid_shape(n) == shape


@pytest.mark.parametrize("L, H", [(30, 9), (32, 32), (48, 32), (2, 4)])
def test_panels_axes_and_colorbar(L, H):
    fig = plot.heatmap_grid(make_scores(8, L, H))
    assert isinstance(fig, Figure)
    view = fig._headlab_view
    assert len(visible_axes(fig)) == 8 and view._grid == (2, 4)
    for ax in view.axes:
        assert ax.get_ylabel() == "Layer" and ax.get_xlabel() == "Head"
        top, bottom = ax.get_ylim()[1], ax.get_ylim()[0]
        assert top == pytest.approx(-0.5) and bottom == pytest.approx(L - 0.5)  # layer 0 at the top
        assert ax.get_xlim() == pytest.approx((-0.5, H - 0.5))
        assert ax.get_images()[0].get_cmap().name == "viridis"
    # every head up to 12, ~6 ticks beyond (step 6 for 32 heads)
    assert list(view.axes[0].get_xticks()) == (list(range(H)) if H <= 12 else list(range(0, H, plot.tick_step(H))))
    assert plot.tick_step(32) == 6 and plot.tick_step(30) == 5 and plot.tick_step(9) == 1
    # tick labels on the outer edge only; one shared colour bar named after the display
    assert view.axes[0].yaxis.label.get_visible() and not view.axes[1].yaxis.label.get_visible()
    assert view.axes[4].xaxis.label.get_visible() and not view.axes[0].xaxis.label.get_visible()
    assert view.colorbar.ax.get_ylabel() == "share of the task's total effect"
    assert len(fig.axes) == 9
    assert [t.get_text() for t in view.titles] == NAMES


def colours(view, i):
    """Panel i's RGBA pixels (L, H, 4) uint8."""
    return np.asarray(view.images[i].get_array())


def test_signed_share_default_values_and_symmetric_scale():
    s = make_scores(3, 4, 5)
    view = plot.heatmap_grid(s)._headlab_view
    share = s.values / np.abs(s.values).sum((1, 2), keepdims=True)
    np.testing.assert_allclose(view.displayed(), share)
    scale = view.scale()
    # by default the scale ends at the 99th percentile of |share| (as in the explorer), clip=None: the full range
    end = np.percentile(np.abs(share), 99)
    assert scale.signed and scale.cmap == "RdBu_r" and scale.lo == -scale.hi == pytest.approx(-end)
    assert scale.clipped and "▲▼ beyond the colour scale" in view.legend_artist.get_text()
    assert view.legend_artist.get_text().startswith("red: ablating the head lowers the task's metric (the head helps)")
    full = view.update(clip=None).scale()
    assert full.hi == pytest.approx(np.abs(share).max()) and not full.clipped
    view.update(clip=99)
    # the colours are the diverging map's: the most negative head is the bluest, the largest the reddest
    t, layer, head = np.unravel_index(np.argmin(share), share.shape)
    r, g, b, _ = colours(view, t)[layer, head].astype(int)
    assert b > r + 60
    t, layer, head = np.unravel_index(np.argmax(share), share.shape)
    r, g, b, _ = colours(view, t)[layer, head].astype(int)
    assert r > b + 60


def test_magnitude_share_is_sequential_from_zero():
    s = make_scores(3, 4, 5)
    view = plot.heatmap_grid(s, normalize="fraction")._headlab_view
    scale = view.scale()
    assert not scale.signed and scale.cmap == "viridis" and scale.lo == 0
    assert view.colorbar.ax.get_ylabel() == "share of the task's total |effect|"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8])
def test_scale_comes_from_the_tasks_shown_for_any_count(n):
    s = make_scores(8, 6, 4, positive=True)
    s.values[7] *= 100  # a task with far larger values: shown or not, it must not set others' scale
    view = plot.heatmap_grid(s, tasks=NAMES[:n], normalize="none", clip=None)._headlab_view
    shown = s.values[:n]
    assert view.scale().hi == pytest.approx(np.abs(shown).max())
    assert view.scale().lo == pytest.approx(-np.abs(shown).max())  # raw scores are signed by kind
    view.update(clip=99)  # the default: the 99th percentile of the tasks shown
    assert view.scale().hi == pytest.approx(np.percentile(np.abs(shown), 99))


def test_threshold_greys_the_rest_and_says_how():
    s = make_scores(8, 30, 9)
    thr = 0.005
    view = plot.heatmap_grid(s, threshold=thr)._headlab_view
    share = s.normalized("share")
    for i, (title, label) in enumerate(zip(view.titles, view.counts)):
        keep = share[i] >= thr
        assert (title.get_text(), label.get_text()) == (NAMES[i], f"{int(keep.sum())} with s ≥ 0.005")
        rgb = colours(view, i)[..., :3].astype(int)
        grey = (rgb.max(-1) - rgb.min(-1)) <= 1  # desaturated
        assert np.array_equal(grey & ~keep, ~keep)
        lum = rgb.mean(-1)
        assert lum[~keep].min() >= 0.79 * 255 and lum[~keep].max() <= 0.91 * 255  # a light grey band
    assert "greyed: not selected" in view.legend_artist.get_text()


def test_selection_by_value_matches_top_and_by_abs_takes_harmers():
    s = make_scores(2, 30, 9)
    view = plot.heatmap_grid(s, top_k=7)._headlab_view
    keep = view.selection()
    for i, task in enumerate(s.tasks):
        assert sorted(zip(*np.nonzero(keep[i]))) == sorted((l, h) for l, h, _ in s.top(task, 7))
        assert view.counts[i].get_text() == "top 7 by s"
    view.update(by="abs")
    keep = view.selection()
    for i in range(2):
        m = np.abs(s.values[i])
        assert keep[i].sum() == 7 and m[keep[i]].min() >= m[~keep[i]].max()
        assert view.counts[i].get_text() == "top 7 by |s|"
    view.update(elbow=True)  # the elbow replaces top-k
    assert view.opts["top_k"] is None and view.counts[0].get_text().startswith("elbow: ")


def test_vmax_clip_adds_plus_ticks_and_cell_markers():
    s = make_scores(8, 30, 9)
    fig = plot.heatmap_grid(s, vmax=0.004)
    view = fig._headlab_view
    fig.canvas.draw()
    labels = [t.get_text() for t in view.colorbar.ax.get_yticklabels()]
    assert labels[-1] == "0.0040+" and labels[0] == "−0.0040+"
    share = s.normalized("share")
    above = sorted((int(y), int(x)) for x, y in view.markers[0]["above"].get_offsets())
    assert above == sorted(map(tuple, np.argwhere(share[0] > 0.004).tolist())) and above
    assert "▲▼ beyond the colour scale" in view.legend_artist.get_text()
    unclipped = plot.heatmap_grid(s, clip=None)
    unclipped.canvas.draw()
    assert not any(t.get_text().endswith("+") for t in unclipped._headlab_view.colorbar.ax.get_yticklabels())
    assert not unclipped._headlab_view.markers[0]["above"].get_visible()


def test_in_place_update_keeps_artists():
    s = make_scores(8, 30, 9)
    fig = plot.heatmap_grid(s, threshold=0.003)
    view = fig._headlab_view
    images, axes, cbar = list(view.images), list(view.axes), view.colorbar
    before = [colours(view, i).copy() for i in range(8)]
    assert view.update(threshold=0.006) is view
    assert view.images == images and view.axes == axes and view.colorbar is cbar and fig._headlab_view is view
    assert any(not np.array_equal(b, colours(view, i)) for i, b in enumerate(before))
    share = s.normalized("share")
    assert view.counts[0].get_text() == f"{int((share[0] >= 0.006).sum())} with s ≥ 0.006"
    view.update(normalize="zscore", threshold=None)
    np.testing.assert_allclose(view.displayed()[2], s.normalized("zscore")[2])
    assert view.images == images and view.counts[2].get_text() == ""
    assert view.legend_artist.get_text().startswith("red: ablating the head")  # no selection: no "greyed" entry
    assert "greyed" not in view.legend_artist.get_text()


def test_task_selection_hides_or_regrids():
    s = make_scores(8, 30, 9)
    fig = plot.heatmap_grid(s)
    view = fig._headlab_view
    images = list(view.images)
    view.update(tasks=NAMES[1:])  # 7 panels still fit 2 × 4: the spare one is hidden
    assert view.images == images and len(visible_axes(fig)) == 7
    assert view.titles[0].get_text() == NAMES[1]
    np.testing.assert_allclose(view.displayed()[0], s.normalized("share")[1])
    view.update(tasks=NAMES[:3])  # 3 panels: rebuilt as 1 × 3 in the same figure
    assert view.figure is fig and view._grid == (1, 3) and len(visible_axes(fig)) == 3


def test_tasks_subset_and_order():
    fig = plot.heatmap_grid(make_scores(8, 4, 4), tasks=["Inference", "Retrieval"])
    assert [t.get_text() for t in fig._headlab_view.titles] == ["Inference", "Retrieval"]


def test_single_heatmap_into_axes():
    s = make_scores(3, 2, 4)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.heatmap(s, "Retrieval", ax=ax, top_k=2) is ax
    assert (ax.get_title(loc="left"), ax.get_title(loc="right")) == ("Retrieval", "top 2 by s") and len(fig.axes) == 2
    ax2 = plot.heatmap(s, "Retrieval")
    assert ax2.get_ylabel() == "Layer" and ax2.get_xlabel() == "Head"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: plot.heatmap_grid(s, tasks=["Nope"]), "unknown task"),
        (lambda s: plot.heatmap(s, "Nope"), "unknown task"),
        (lambda s: plot.heatmap_grid(s, normalize="softmax"), "unknown normalize"),
        (lambda s: plot.heatmap_grid(s, threshold=0.1, top_k=3), "give one of threshold, top_k or elbow"),
        (lambda s: plot.heatmap_grid(s, by="signed"), "by must be 'value'"),
        (lambda s: plot.heatmap_grid(s, top_k=0), "top_k"),
        (lambda s: plot.heatmap_grid(s.values), "expected HeadScores"),
    ],
)
def test_errors_are_one_line(call, message):
    with pytest.raises((ValueError, TypeError)) as info:
        call(make_scores(2, 2, 4))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_save_formats(tmp_path):
    fig = plot.heatmap_grid(make_scores(2, 2, 4))
    for suffix in ("png", "svg", "pdf"):
        path = plot.save(fig, tmp_path / "deep" / f"grid.{suffix}")
        assert path.is_file() and path.stat().st_size > 0
    with pytest.raises(ValueError, match=r"cannot save as '.jpg': give a path ending in .png / .svg / .pdf"):
        plot.save(fig, tmp_path / "grid.jpg")
    assert fig._repr_png_().startswith(b"\x89PNG")


def test_attention_pattern_labels():
    tokens = ["<s>", "The", " cat"]
    fig = plot.attention_pattern(np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None], tokens, title="L0.H1")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["<s>", "The", "␣cat"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["<s>", "The", "␣cat"]
    assert ax.get_xlabel() == "Key" and ax.get_ylabel() == "Query" and ax.get_title() == "L0.H1"
    with pytest.raises(ValueError, match="expected"):
        plot.attention_pattern(np.ones((2, 2)), tokens)


def dots(view, i):
    """(layer, head) pairs of panel i's significance markers, sorted."""
    return sorted((int(y), int(x)) for x, y in view.markers[i]["significant"].get_offsets())


def test_significance_markers_follow_mask_and_toggle_in_place():
    s = make_scores(3, 6, 4)
    mask = np.random.default_rng(5).random(s.shape) > 0.6
    fig = plot.heatmap_grid(s, significant=mask)
    view = fig._headlab_view
    markers, n_artists = list(view.markers), [len(ax.get_children()) for ax in view.axes]
    for i in range(3):
        assert view.markers[i]["significant"].get_visible()
        assert dots(view, i) == sorted(map(tuple, np.argwhere(mask[i]).tolist()))
    assert "● 95% CI excludes 0" in view.legend_artist.get_text()
    view.update(significant=None)
    assert not any(m["significant"].get_visible() for m in view.markers)
    other = ~mask
    view.update(significant=other, top_k=2)
    assert view.markers == markers and [len(ax.get_children()) for ax in view.axes] == n_artists
    chosen = view.selection()  # with a selection, the dots are on the selected heads only
    assert dots(view, 1) == sorted(map(tuple, np.argwhere(other[1] & chosen[1]).tolist()))
    view.update(top_k=None)
    assert dots(view, 1) == sorted(map(tuple, np.argwhere(other[1]).tolist()))
    view.update(tasks=[NAMES[2], NAMES[0]])  # the dots follow the task shown in each panel
    assert dots(view, 0) == sorted(map(tuple, np.argwhere(other[2]).tolist()))
    assert view.axes[0].get_ylim() == pytest.approx((5.5, -0.5))  # markers do not move the axes limits
    with pytest.raises(ValueError, match="bool array of shape"):
        view.update(significant=mask[:2])


def test_missing_heads_are_dark_and_named():
    s = make_scores(2, 4, 4)
    s.values[0, 1, 2] = np.nan
    view = plot.heatmap_grid(s)._headlab_view
    assert tuple(colours(view, 0)[1, 2, :3]) == (84, 84, 84)
    assert view.counts[0].get_text() == "1 NaN" and "missing (NaN)" in view.legend_artist.get_text()


def test_always_any_grid_rows_by_two():

    runs = [make_scores(3, 4, 5, seed=i) for i in range(4)]
    aa = stats.always_any(runs, top_k=5)
    fig = plot.always_any_grid(aa)
    panels = fig.axes[:-1]  # the last axes is the colour bar
    assert len(panels) == 3 * 2 and fig._repr_png_().startswith(b"\x89PNG")
    for r, task in enumerate(NAMES[:3]):
        left, right = panels[2 * r], panels[2 * r + 1]
        assert left.get_title() == f"Always ({int(aa.always[r].sum())})"
        assert right.get_title() == f"Any ({int(aa.any[r].sum())})"
        assert left.get_ylabel() == f"{task}\nLayer"
        shown = right.get_images()[0].get_array()
        np.testing.assert_array_equal(~shown.mask, aa.any[r])
        np.testing.assert_allclose(shown.compressed(), aa.freq[r][aa.any[r]])
    assert fig.axes[-1].get_ylabel() == "Selected in fraction of 4 runs"
    assert len(plot.always_any_grid(aa, tasks=NAMES[1]).axes) == 2 + 1
    via_grid = plot.heatmap_grid(aa, tasks=NAMES[:2])  # heatmap_grid draws Always / Any too
    assert [a.get_title() for a in via_grid.axes[:4]] == [a.get_title() for a in panels[:4]]
    with pytest.raises(ValueError, match="unknown"):
        plot.always_any_grid(aa, tasks=["Nope"])


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

CASES = Catalogue("api:plot")
bad, safe = CASES.bad, CASES.safe

grid = lambda c, **kw: plot.heatmap_grid(c.s, **kw)  # noqa: E731
for kw_, error, match in [
    ({"ncols": 0}, ValueError, "ncols must be ≥ 1, got 0"),
    ({"ncols": 1.5}, ValueError, "ncols must be a whole number"),
    ({"threshold": float("nan")}, ValueError, "threshold must be a finite number, got nan"),
    ({"threshold": float("inf")}, ValueError, "threshold must be a finite number, got inf"),
    ({"threshold": "0.1"}, ValueError, "threshold must be a number, got '0.1'"),
    ({"top_k": 0}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": -1}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": 99}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": 2, "threshold": 0.1}, ValueError, "give one of threshold, top_k or elbow, not threshold and top_k"),
    ({"elbow": True, "top_k": 2}, ValueError, "give one of threshold, top_k or elbow"),
    ({"elbow": "yes"}, ValueError, "elbow must be True or False"),
    ({"normalize": "softmax"}, ValueError, "unknown normalize 'softmax'"),
    ({"vmax": 0}, ValueError, "vmax must be a positive number"),
    ({"vmax": float("nan")}, ValueError, "vmax must be a finite number"),
    ({"vmax": "a"}, ValueError, "vmax must be a number"),
    ({"by": "signed"}, ValueError, "by must be 'value' .* or 'abs'"),
    ({"cmap": "nope"}, ValueError, "unknown cmap 'nope'"),
    ({"cmap": 5}, TypeError, "cmap must be a colour map name"),
    ({"figsize": (0, 1)}, ValueError, "figsize must be .* two positive numbers"),
    ({"figsize": "big"}, ValueError, "figsize must be"),
    ({"figsize": (0.5, 0.5)}, ValueError, "too small"),
    ({"tasks": ["Nope"]}, ValueError, r"unknown task\(s\) \['Nope'\]"),
    ({"tasks": []}, ValueError, "no tasks selected"),
    ({"tasks": ["A", "A"]}, ValueError, "named twice"),
    ({"tasks": 5}, TypeError, "tasks must be a task name or a list"),
    ({"significant": np.ones((2, 2))}, ValueError, r"significant must be a bool array of shape \(2, 3, 4\)"),
]:
    bad(f"heatmap_grid {kw_!r:.40}", lambda c, k=kw_: grid(c, **k), error, match)
bad("heatmap_grid a dict", lambda c: plot.heatmap_grid({}), TypeError, "expected HeadScores")
bad(
    "update threshold nan",
    lambda c: grid(c)._headlab_view.update(threshold=float("nan")),
    ValueError,
    "threshold must be a finite number",
)
bad("update top_k 0", lambda c: grid(c)._headlab_view.update(top_k=0), ValueError, "top_k must be from 1")
bad("heatmap unknown task", lambda c: plot.heatmap(c.s, "Nope"), ValueError, "unknown task")
bad("heatmap ax", lambda c: plot.heatmap(c.s, "A", ax="left"), TypeError, "ax must be a matplotlib Axes")
bad("always_any_grid str", lambda c: plot.always_any_grid("x"), TypeError, "takes stats.always_any")
bad("plot_matrix list", lambda c: plot.plot_matrix([[1]]), TypeError, "takes a non-empty pandas DataFrame")
bad(
    "plot_matrix vmin>vmax",
    lambda c: plot.plot_matrix(pd.DataFrame([[1.0]]), vmin=1, vmax=0),
    ValueError,
    "vmin .* must be below vmax",
)
bad("plot_matrix text", lambda c: plot.plot_matrix(pd.DataFrame([["a"]])), ValueError, "numeric DataFrame")
bad("save jpg", lambda c: plot.save(grid(c), c.tmp / "x.jpg"), ValueError, "cannot save as '.jpg'")
bad("save a str", lambda c: plot.save("fig", c.tmp / "x.png"), TypeError, "takes a matplotlib Figure")
bad("save path None", lambda c: plot.save(grid(c), None), ValueError, "needs a file path")
bad(
    "attention_pattern shape",
    lambda c: plot.attention_pattern(np.zeros((2, 2)), ["a"]),
    ValueError,
    r"expected \(1, 1\)",
)
bad(
    "compare_scatter unknown task",
    lambda c: plot.compare_scatter(c.s, c.other, task="Nope"),
    ValueError,
    r"task\(s\) \['Nope'\] are not scored by both",
)
bad("compare_scatter a str", lambda c: plot.compare_scatter(c.s, "b"), TypeError, "expected HeadScores")
bad(
    "cross_model_plot bins",
    lambda c: plot.cross_model_plot(c.s, c.other, bins=0),
    ValueError,
    "bins must be",
)


def nan_grid(c):
    values = c.s.values.copy()
    values[0, 1, 2] = np.nan
    s = hand_scores(values, ["A", "B"])
    return s, plot.heatmap_grid(s, top_k=2)


def nan_grid_ok(out, c):
    s, fig = out
    view = fig._headlab_view
    shown = view.displayed()[0]
    expected = s.normalized("share")[0]
    finite = ~np.isnan(expected)
    scale = view.scale()
    return (
        np.isnan(shown[1, 2])
        and finite.sum() == L * H - 1
        and np.allclose(shown[finite], expected[finite])  # the panel is drawn, not blanked
        and view.counts[0].get_text() == "top 2 by s · 1 NaN"
        and view.counts[1].get_text() == "top 2 by s"
        and np.isfinite([scale.lo, scale.hi]).all()
        and tuple(np.asarray(view.images[0].get_array())[1, 2, :3]) == (84, 84, 84)
    )


safe("a NaN head is dark grey, its panel drawn", nan_grid, nan_grid_ok)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
