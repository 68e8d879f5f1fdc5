"""headlab.widgets: the explorer redraws in place from cached scores, computes once per (model, method),
shows errors as one line and inspects single heads on the tiny model."""

import base64

import ipywidgets as W
import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent

from headlab import scoring, widgets
from headlab.models import ModelInfo
from headlab.results import HeadScores
from headlab.tasks import Task

L, H = 2, 4
PROMPTS = {"Alpha": ["The cat sat on the", "A dog ran to the"], "Beta": ["One plus one is", "Two plus two is"]}


@pytest.fixture(scope="module")
def tasks():
    return [
        Task.from_records(
            name,
            [
                {"prompt": p, "answer": " mat", "counterfactual": p.replace("e", "a"), "counterfactual_answer": " hat"}
                for p in prompts
            ],
        )
        for name, prompts in PROMPTS.items()
    ]


@pytest.fixture(scope="module")
def tiny_model():
    from headlab.models import tiny

    return tiny(n_layers=L, n_heads=H)


def fake_scores(method="attribution", ablation="resample", seed=0):
    """Heavy-tailed positive scores (fractions span decades) for the two tasks."""
    rng = np.random.default_rng(seed)
    values = 10 ** rng.uniform(-4, 0, (2, L, H))
    return HeadScores(
        values,
        list(PROMPTS),
        ModelInfo("tiny", L, H, H, 16, 64, 259),
        method,
        {"ablation": ablation, "metric": "logit_diff"},
        [2, 2],
        [0.0, 0.0],
        np.zeros((2, 1, L, H)),
    )


@pytest.fixture
def calls(monkeypatch):
    """Replace score() with a recorder returning fake scores of the requested method."""
    made = []

    def fake_score(model, tasks, method="attribution", ablation="resample", **kwargs):
        made.append((model, [t.name for t in tasks], method, kwargs.get("probe", ablation)))
        return fake_scores(method, ablation, seed=len(made))

    monkeypatch.setattr(scoring, "score", fake_score)
    return made


def make(tasks, **kwargs):
    loads = []
    models = kwargs.pop("models", {"tiny": lambda: loads.append(1) or "bridge"})
    return widgets.explorer(models=models, tasks=tasks, **kwargs), loads


def test_layout_and_controls(tasks, calls):
    ex, loads = make(tasks, scores=fake_scores())
    assert isinstance(ex.widget, W.VBox) and hasattr(ex, "_ipython_display_")
    assert calls == [] and loads == []  # seeded: nothing computed, the model not even loaded
    c = ex.controls
    assert list(c["method"].options) == [
        "attribution · resample",
        "attribution · zero",
        "attribution · mean",
        "ablation · resample",
        "ablation · zero",
        "ablation · mean",
        "verified · resample",
        "verified · zero",
        "verified · mean",
        "probe · mlp",
        "probe · logistic",
        "gating · 3 seeds",
    ]
    assert c["method"].value == "attribution · resample" and c["tasks"].value == ("Alpha", "Beta")
    assert isinstance(c["threshold"], W.FloatLogSlider)  # fractions span decades
    assert c["k"].max == L * H and c["layer"].max == L - 1 and c["head"].max == H - 1
    assert [t.get_text() for t in ex.view.titles[:2]] == ["Alpha", "Beta"]
    assert ex.error.value == ""


def test_threshold_normalize_tasks_redraw_in_place(tasks, calls):
    ex, _ = make(tasks, scores=fake_scores())
    view, images = ex.view, list(ex.view.images)
    frac = ex.scores.normalized("fraction")
    slider = ex.controls["threshold"]
    slider.value = float(np.sort(frac[0].ravel())[-3])  # 3 heads of Alpha pass
    assert [t.get_text() for t in view.titles[:2]] == ["Alpha", "Beta"]
    assert view.counts[0].get_text() == "3 ≥ thr"
    assert view.counts[1].get_text() == f"{int((frac[1] >= slider.value).sum())} ≥ thr"
    assert (images[0].get_alpha() == 1).sum() == 3

    ex.controls["normalize"].value = "zscore"
    assert ex.view is view and view.images == images
    np.testing.assert_allclose(images[1].get_array(), ex.scores.normalized("zscore")[1])

    ex.controls["top_k"].value = True
    ex.controls["k"].value = 2
    assert all((im.get_alpha() == 1).sum() == 2 for im in images) and view.counts[0].get_text() == "top 2"
    assert ex.controls["threshold"].disabled

    ex.controls["tasks"].value = ("Beta",)
    assert [ax.get_visible() for ax in view.axes] == [True] and view.titles[0].get_text() == "Beta"
    assert view.counts[0].get_text() == "top 2"
    assert calls == []  # all of it from the cached scores


def test_method_and_model_changes_score_once(tasks, calls):
    ex, loads = make(tasks, scores=fake_scores(), models={"tiny": lambda: "bridge-a", "other": lambda: "bridge-b"})
    ex.controls["method"].value = "ablation · zero"
    assert calls == [("bridge-a", ["Alpha", "Beta"], "ablation", "zero")]
    assert ex.scores.method == "ablation" and ex.error.value == ""
    np.testing.assert_allclose(ex.view.images[0].get_array(), ex.scores.normalized("fraction")[0])
    ex.controls["method"].value = "attribution · resample"  # seeded: cached
    ex.controls["method"].value = "ablation · zero"  # computed once already
    assert len(calls) == 1
    ex.controls["model"].value = "other"
    assert len(calls) == 2 and calls[-1][0] == "bridge-b"
    ex.controls["method"].value = "probe · logistic"  # the probe kind goes to score() as probe=
    assert calls[-1] == ("bridge-b", ["Alpha", "Beta"], "probe", "logistic")


def test_score_error_is_one_line(tasks, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nTraceback (most recent call last): ...")

    monkeypatch.setattr(scoring, "score", broken)
    ex, _ = make(tasks, scores=fake_scores())
    shown = ex.scores
    ex.controls["method"].value = "ablation · mean"
    assert "RuntimeError: out of memory" in ex.error.value
    assert "Traceback" not in ex.error.value and "\n" not in ex.error.value
    assert ex.scores is shown and ex.view.scores is shown
    ex.controls["tasks"].value = ()
    assert "select at least one task" in ex.error.value


def test_seeded_without_tasks_loads_builtin_lazily(calls):
    ex = widgets.explorer(models={"tiny": lambda: "bridge"}, scores=fake_scores())
    assert ex.controls["tasks"].options == ("Alpha", "Beta") and ex.error.value == ""
    ex.controls["method"].value = "attribution · zero"  # needs the Task objects: not built-in names
    assert ex.error.value.count("TaskError: unknown built-in task") == 1 and calls == []


def test_linear_slider_when_values_do_not_span_decades(tasks, calls):
    seed = fake_scores()
    seed.values[:] = 1 + np.random.default_rng(1).random(seed.values.shape)
    ex, _ = make(tasks, scores=seed)
    assert type(ex.controls["threshold"]) is W.FloatSlider


def test_computes_at_start_without_seed(tasks, calls):
    ex, loads = make(tasks, methods=["ablation · zero", ("attribution", "mean")])
    assert list(ex.controls["method"].options) == ["ablation · zero", "attribution · mean"]
    assert loads == [1] and calls == [("bridge", ["Alpha", "Beta"], "ablation", "zero")]
    with pytest.raises(ValueError, match="unknown method"):
        make(tasks, methods=["gradient"])


def test_details_value_rank_and_pattern(tasks, tiny_model, calls):
    seed = fake_scores()
    ex, _ = make(tasks, scores=seed, models={"tiny": tiny_model})
    info = ex.details("Beta", 1, 2)
    assert info.value == pytest.approx(seed.values[1, 1, 2])
    assert info.rank == seed.rank("Beta")[1, 2] and info.n_heads == L * H
    assert info.shown == pytest.approx(seed.normalized("fraction")[1, 1, 2])
    assert info.tokens[0] == "<|bos|>" and "".join(info.tokens[1:]) == PROMPTS["Beta"][0]
    assert info.pattern.shape == (len(info.tokens),) * 2
    np.testing.assert_allclose(info.pattern.sum(-1), 1, atol=1e-5)
    ax, labels = info.figure.axes[0], [t.replace(" ", "␣") for t in info.tokens]
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert "rank" in info.summary()
    # shown below the grid: the summary, and the pattern as base64 PNG text (bytes would reach the
    # browser as a binary buffer and render as a broken image)
    text, image = ex.details_out.outputs
    assert info.summary() in text["data"]["text/plain"]
    png = base64.b64decode(image["data"]["image/png"], validate=True)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no head"):
        ex.details("Beta", L, 0)

    # a click on a panel (interactive canvases) selects that head and shows its details
    ax = ex.view.axes[1]
    x, y = ax.transData.transform((3, 1))
    ex.figure.canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", ex.figure.canvas, x, y))
    c = ex.controls
    assert (c["detail_task"].value, c["layer"].value, c["head"].value) == ("Beta", 1, 3)
    assert ex.error.value == "" and calls == []


def test_pointer_on_the_grid_png(tasks, tiny_model, calls):
    """ipyevents on the PNG: image pixels (origin top left) → (task, layer, head); hover names, click shows."""
    seed = fake_scores()
    ex, _ = make(tasks, scores=seed, models={"tiny": tiny_model})
    png = ex.image.value
    import io

    from PIL import Image

    width, height = Image.open(io.BytesIO(png)).size
    assert (width, height) == (round(ex.figure.bbox.width), round(ex.figure.bbox.height))
    x, y_up = ex.view.axes[1].transData.transform((2, 0))  # Beta, layer 0, head 2 in display coordinates
    pixel = {"dataX": x, "dataY": height - y_up}
    assert ex.head_at(pixel["dataX"], pixel["dataY"]) == ("Beta", 0, 2)
    ex._on_pointer({"type": "mousemove", **pixel})
    assert (
        ex.hover.value.startswith("L0.H2 · Beta: score")
        and f"rank {seed.rank('Beta')[0, 2]} of {L * H}" in ex.hover.value
    )
    ex._on_pointer({"type": "mousemove", "dataX": 1, "dataY": 1})  # the margin: no head
    assert ex.hover.value == "" and ex.head_at(1, 1) is None
    ex._on_pointer({"type": "click", **pixel})
    c = ex.controls
    assert (c["detail_task"].value, c["layer"].value, c["head"].value) == ("Beta", 0, 2)
    assert "L0.H2 in Beta" in ex.details_out.outputs[0]["data"]["text/plain"]
    assert ex.error.value == ""


def scores_with_items(n_items=6):
    """Fake scores whose per_example holds ``n_items`` items per task, heads 0.x strongly positive."""
    rng = np.random.default_rng(4)
    items = rng.normal(0, 0.2, (2, n_items, L, H))
    items[:, :, 0] += 3.0
    return HeadScores(
        items.mean(1),
        list(PROMPTS),
        ModelInfo("tiny", L, H, H, 16, 64, 259),
        "attribution",
        {"ablation": "resample", "metric": "logit_diff"},
        [n_items] * 2,
        [0.0, 0.0],
        items,
    )


def test_ci_toggle_shows_cached_significance(tasks, calls, monkeypatch):
    from headlab import stats

    made = []
    real = stats.bootstrap
    monkeypatch.setattr(stats, "bootstrap", lambda s, **kw: made.append(s) or real(s, **kw))
    seed = scores_with_items()
    ex, _ = make(tasks, scores=seed)
    ci, view = ex.controls["ci"], ex.view
    markers = list(view.markers)
    assert not ci.disabled and not ci.value and made == []
    assert not any(m.get_visible() for m in markers)

    ci.value = True
    expected = real(seed).significant
    assert made == [seed] and ex.error.value == "" and view.markers == markers
    for i in range(2):
        assert markers[i].get_visible()
        shown = sorted((int(y), int(x)) for x, y in markers[i].get_offsets())
        assert shown == sorted(map(tuple, np.argwhere(expected[i]).tolist()))
    assert expected[:, 0].all()  # the strong heads are marked

    ci.value = False
    assert not any(m.get_visible() for m in markers)
    ci.value = True
    ex.controls["top_k"].value = True
    assert markers[0].get_visible() and made == [seed]  # computed once for these scores

    ex.controls["method"].value = "ablation · zero"  # new scores without items: CI switches off
    assert ci.disabled and not ci.value and ex.error.value == ""
    assert not any(m.get_visible() for m in ex.view.markers) and made == [seed]


def test_ci_toggle_disabled_without_items(tasks, calls):
    ex, _ = make(tasks, scores=fake_scores())  # per_example holds 1 row, n_examples says 2
    ci = ex.controls["ci"]
    assert ci.disabled and ci.tooltip.startswith("CI unavailable:")
    ex2, _ = make(tasks, scores=scores_with_items(1))
    assert ex2.controls["ci"].disabled and "at least 2" in ex2.controls["ci"].tooltip
