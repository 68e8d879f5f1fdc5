"""headlab.plot: grid layout, axes, colour bar, selection, in-place updates, errors, saving."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from headlab import plot
from headlab.models import ModelInfo
from headlab.results import HeadScores

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
    return HeadScores(
        values=v,
        tasks=NAMES[:n_tasks],
        model=ModelInfo("x", L, H, H, 8, 64, 100),
        method="attribution",
        params={"ablation": "resample"},
        n_examples=[1] * n_tasks,
        baseline=[0.0] * n_tasks,
        per_example=np.zeros((n_tasks, 1, L, H)),
    )


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
    # tick labels on the outer edge only; one shared colour bar titled "Head importance"
    assert view.axes[0].yaxis.label.get_visible() and not view.axes[1].yaxis.label.get_visible()
    assert view.axes[4].xaxis.label.get_visible() and not view.axes[0].xaxis.label.get_visible()
    assert view.colorbar.ax.get_ylabel() == "Head importance"
    assert len(fig.axes) == 9
    assert [t.get_text() for t in view.titles] == NAMES


def test_fraction_default_values_and_clim():
    s = make_scores(3, 4, 5)
    view = plot.heatmap_grid(s)._headlab_view
    frac = s.normalized("fraction")
    for i, im in enumerate(view.images):
        np.testing.assert_allclose(im.get_array(), frac[i])
    assert view.norm.vmin == 0 and view.norm.vmax == pytest.approx(frac.max())


def test_threshold_counts_in_titles_and_dimming():
    s = make_scores(8, 30, 9)
    thr = 0.005
    view = plot.heatmap_grid(s, threshold=thr)._headlab_view
    frac = s.normalized("fraction")
    for i, (title, label, im) in enumerate(zip(view.titles, view.counts, view.images)):
        count = int((frac[i] >= thr).sum())
        assert (title.get_text(), label.get_text()) == (NAMES[i], f"{count} ≥ thr")
        alpha = im.get_alpha()
        assert (alpha == 1).sum() == count and np.all(alpha[frac[i] < thr] == plot.DIM_ALPHA)


def test_top_k_selects_exactly_k():
    s = make_scores(5, 32, 32)
    view = plot.heatmap_grid(s, top_k=7)._headlab_view
    frac = s.normalized("fraction")
    for i, im in enumerate(view.images[:5]):
        keep = im.get_alpha() == 1
        assert keep.sum() == 7
        assert np.all(frac[i][keep].min() >= frac[i][~keep].max())
        assert view.counts[i].get_text() == "top 7"


def test_vmax_clip_adds_plus_tick():
    s = make_scores(8, 30, 9)
    fig = plot.heatmap_grid(s, vmax=0.004)
    view = fig._headlab_view
    fig.canvas.draw()
    labels = [t.get_text() for t in view.colorbar.ax.get_yticklabels()]
    assert labels[-1] == "0.0040+"
    assert view.colorbar.get_ticks()[-1] == pytest.approx(0.004)
    assert sum(label.endswith("+") for label in labels) == 1
    unclipped = plot.heatmap_grid(s)
    unclipped.canvas.draw()
    assert not any(t.get_text().endswith("+") for t in unclipped._headlab_view.colorbar.ax.get_yticklabels())


@pytest.mark.parametrize(
    "kwargs", [{"normalize": "zscore"}, {"normalize": "none"}, {"normalize": "max"}, {"signed": True}]
)
def test_signed_display_is_diverging_and_symmetric(kwargs):
    view = plot.heatmap_grid(make_scores(4, 6, 4), **kwargs)._headlab_view
    assert view.images[0].get_cmap().name == "RdBu_r"
    assert view.norm.vmin == pytest.approx(-view.norm.vmax) and view.norm.vmax > 0


def test_signed_threshold_uses_magnitude():
    s = make_scores(2, 6, 4)
    view = plot.heatmap_grid(s, normalize="none", threshold=1.0)._headlab_view
    assert view.counts[0].get_text() == f"{int((np.abs(s.values[0]) >= 1.0).sum())} ≥ thr"


def test_positive_raw_values_stay_sequential():
    view = plot.heatmap_grid(make_scores(2, 6, 4, positive=True), normalize="none")._headlab_view
    assert view.images[0].get_cmap().name == "viridis" and view.norm.vmin == 0


def test_in_place_update_keeps_artists():
    s = make_scores(8, 30, 9)
    fig = plot.heatmap_grid(s, threshold=0.003)
    view = fig._headlab_view
    images, axes, cbar = list(view.images), list(view.axes), view.colorbar
    before = [im.get_alpha().copy() for im in images]
    assert view.update(threshold=0.006) is view
    assert view.images == images and view.axes == axes and view.colorbar is cbar and fig._headlab_view is view
    assert any(not np.array_equal(b, im.get_alpha()) for b, im in zip(before, images))
    frac = s.normalized("fraction")
    assert view.counts[0].get_text() == f"{int((frac[0] >= 0.006).sum())} ≥ thr"

    view.update(normalize="zscore", threshold=None)
    z = s.normalized("zscore")
    assert view.images == images
    np.testing.assert_allclose(images[2].get_array(), z[2])
    assert images[2].get_cmap().name == "RdBu_r" and view.titles[2].get_text() == NAMES[2]
    assert view.counts[2].get_text() == ""
    assert np.all(images[0].get_alpha() == 1)

    view.update(top_k=3)  # top_k replaces the threshold
    assert view.opts["threshold"] is None and all((im.get_alpha() == 1).sum() == 3 for im in images)


def test_task_selection_hides_or_regrids():
    s = make_scores(8, 30, 9)
    fig = plot.heatmap_grid(s)
    view = fig._headlab_view
    images = list(view.images)
    view.update(tasks=NAMES[1:])  # 7 panels still fit 2 × 4: the spare one is hidden
    assert view.images == images and len(visible_axes(fig)) == 7
    assert view.titles[0].get_text() == NAMES[1]
    np.testing.assert_allclose(images[0].get_array(), s.normalized("fraction")[1])
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
    assert (ax.get_title(loc="left"), ax.get_title(loc="right")) == ("Retrieval", "top 2") and len(fig.axes) == 2
    ax2 = plot.heatmap(s, "Retrieval")
    assert ax2.get_ylabel() == "Layer" and ax2.get_xlabel() == "Head"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: plot.heatmap_grid(s, tasks=["Nope"]), "unknown task"),
        (lambda s: plot.heatmap(s, "Nope"), "unknown task"),
        (lambda s: plot.heatmap_grid(s, normalize="softmax"), "unknown normalize"),
        (lambda s: plot.heatmap_grid(s, threshold=0.1, top_k=3), "not both"),
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
    with pytest.raises(ValueError, match="use one of"):
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


def _png(data):
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize(
    "change",
    [dict(threshold=0.01), dict(normalize="zscore"), dict(top_k=5), dict(tasks=NAMES[:7]), dict(tasks=NAMES[:3])],
)
def test_blitted_render_matches_a_full_draw(change):
    fig = plot.heatmap_grid(make_scores(), threshold=0.002)
    view = fig._headlab_view
    before = _png(view.render_png())
    view.update(**change)
    fast, full = _png(view.render_png()), _png(fig._repr_png_())
    assert fast.shape == full.shape
    differs = np.abs(fast - full).sum(-1) > 0
    # identical but for text antialiasing: few pixels, faint
    assert differs.mean() < 0.02 and np.abs(fast - full).max() <= 40
    if fast.shape == before.shape:
        assert (np.abs(fast - before).sum(-1) > 30).mean() > 0.005  # the change is visible


def dots(view, i):
    """(layer, head) pairs of panel i's significance markers, sorted."""
    return sorted((int(y), int(x)) for x, y in view.markers[i].get_offsets())


def test_significance_markers_follow_mask_and_toggle_in_place():
    s = make_scores(3, 6, 4)
    mask = np.random.default_rng(5).random(s.shape) > 0.6
    fig = plot.heatmap_grid(s, significant=mask)
    view = fig._headlab_view
    markers, n_artists = list(view.markers), [len(ax.get_children()) for ax in view.axes]
    for i in range(3):
        assert view.markers[i].get_visible()
        assert dots(view, i) == sorted(map(tuple, np.argwhere(mask[i]).tolist()))
    view.update(significant=None)
    assert not any(m.get_visible() for m in view.markers)
    other = ~mask
    view.update(significant=other, top_k=2)
    assert view.markers == markers and [len(ax.get_children()) for ax in view.axes] == n_artists
    assert view.markers[1].get_visible() and dots(view, 1) == sorted(map(tuple, np.argwhere(other[1]).tolist()))
    view.update(tasks=[NAMES[2], NAMES[0]])  # the dots follow the task shown in each panel
    assert dots(view, 0) == sorted(map(tuple, np.argwhere(other[2]).tolist()))
    assert view.axes[0].get_ylim() == pytest.approx((5.5, -0.5))  # markers do not move the axes limits
    with pytest.raises(ValueError, match="bool array of shape"):
        view.update(significant=mask[:2])
    assert not plot.heatmap_grid(s)._headlab_view.markers[0].get_visible()


SIG = np.random.default_rng(7).random((8, 30, 9)) > 0.5


@pytest.mark.parametrize("start, change", [(None, SIG), (SIG, None)])
def test_blitted_render_includes_markers(start, change):
    fig = plot.heatmap_grid(make_scores(), significant=start)
    view = fig._headlab_view
    before = _png(view.render_png())
    view.update(significant=change)
    fast, full = _png(view.render_png()), _png(fig._repr_png_())
    differs = np.abs(fast - full).sum(-1) > 0
    assert differs.mean() < 0.02 and np.abs(fast - full).max() <= 40
    assert (np.abs(fast - before).sum(-1) > 30).mean() > 0.005


def test_always_any_grid_rows_by_two():
    from headlab import stats

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


def test_png_bytes_round_trip():
    rgba = np.random.default_rng(0).integers(0, 256, (7, 5, 4), dtype=np.uint8)
    import io

    from PIL import Image

    decoded = np.asarray(Image.open(io.BytesIO(plot.png_bytes(rgba))))
    assert decoded.shape == (7, 5, 4) and np.array_equal(decoded, rgba)
