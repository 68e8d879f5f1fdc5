"""headlab.viz.explorer (headlab.explorer()): one state model — the controls are views of ``ex.state``, a job writes
only its map into the store, compare keeps map A, cancel leaves the state as it was. The explorer sends numbers
to its canvas and redraws from stored maps, computes a new one in a worker thread (task by task, asked first
when long, counted, cancellable), keeps every readout tied to the maps on screen, says errors in words,
explains its colours and saves a standalone page."""

import base64
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from headlab import scoring
from headlab.engine import hooks, progress
from headlab.models import ModelInfo
from headlab.tasks import Task
from headlab.testing import head_scores
from headlab.viz import canvas
from headlab.viz import explorer as widgets

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
    from headlab.testing import tiny

    return tiny(n_layers=L, n_heads=H)


def fake_scores(method="attribution", ablation="resample", seed=0, names=tuple(PROMPTS), n_items=1):
    """Signed heavy-tailed scores for the tasks, ``n_items`` items each."""
    rng = np.random.default_rng(seed)
    items = rng.choice([-1, 1], (len(names), n_items, L, H)) * 10 ** rng.uniform(-4, 0, (len(names), n_items, L, H))
    return head_scores(
        items.mean(1),
        per_example=items,
        tasks=names,
        model=ModelInfo(f"tiny-{L}x{H}-d64-s0", L, H, H, 16, 64, 259),
        method=method,
        params={"ablation": ablation, "metric": "logit_diff"},
        n_examples=[max(n_items, 2)] * len(names),
    )


@pytest.fixture
def calls(monkeypatch):
    """Replace score() with a recorder returning fake scores of the requested method and tasks, and make
    every job quick (estimate() says 1 s)."""
    made = []

    def fake_score(model, tasks, method="attribution", ablation="resample", **kwargs):
        made.append((model, [t.name for t in tasks], method, kwargs.get("probe", ablation)))
        return fake_scores(method, ablation, seed=len(made), names=[t.name for t in tasks])

    monkeypatch.setattr(scoring, "score", fake_score)
    monkeypatch.setattr(scoring, "estimate", lambda *a, **k: scoring.Estimate(["Alpha"], 1.0, 1.0))
    return made


def make(tasks, **kwargs):
    loads = []
    models = kwargs.pop("models", {"tiny": lambda: loads.append(1) or "bridge"})
    ex = widgets.explorer(models=models, tasks=tasks, **kwargs)
    ex.wait(10)
    return ex, loads


def grid_arrays(ex):
    """The numbers the canvas holds: per panel (colors (L, H, 4), raw, shown, rank, flags)."""
    g = ex.grid
    colors = np.frombuffer(g.colors, np.uint8).reshape(-1, L, H, 4)
    cells = np.frombuffer(g.cells, np.float32).reshape(-1, L, H, 2)
    ranks = np.frombuffer(g.ranks, np.int32).reshape(-1, L, H)
    flags = np.frombuffer(g.flags, np.uint8).reshape(-1, L, H)
    return colors, cells[..., 0], cells[..., 1], ranks, flags


def selected(ex):
    return (grid_arrays(ex)[4] & canvas.FLAG["selected"]) > 0


def titles(ex):
    return [p["title"] for p in ex.grid.spec["panels"]]


def legend(ex):
    return [e["text"] for e in ex.grid.spec["legend"]]


def test_layout_and_controls(tasks, calls):
    ex, loads = make(tasks, scores=fake_scores())
    assert hasattr(ex, "_ipython_display_") and calls == [] and loads == []  # seeded: nothing computed
    c = ex.controls
    assert list(c["method"].options) == [
        "attribution · resample",
        "attribution · zero",
        "attribution · mean",
        "attribution · resample · IG m=4",
        "attribution · resample · IG m=2 per layer",
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
    assert c["normalize"].value == "share" and c["select"].value == "none" and c["by"].value == "value"
    assert c["tasks"].value == ("Alpha", "Beta") and all(chip.value for chip in c["tasks"].chips.values())
    assert titles(ex) == ["Alpha", "Beta"] and ex.grid.spec["hint"] == "hover a head · click for details"
    # the default scale clips at the 99th percentile of |shown|, ▲▼ beyond, its ends ticked
    scale = ex.grid.spec["scale"]
    share = ex.scores.normalized("share")
    limit = np.percentile(np.abs(share), 99.0)
    assert ex.state.clip == 99.0 and c["clip"].value == 99.0
    assert scale["lo"] == pytest.approx(-limit) and scale["hi"] == pytest.approx(limit)
    assert [t["v"] for t in (scale["ticks"][0], scale["ticks"][-1])] == pytest.approx([-limit, limit])
    assert scale["ticks"][-1]["text"].endswith("+") and "▲▼ beyond the colour scale" in legend(ex)
    # the grid explains itself in words: what red and blue mean, the colour bar's title, the hover unit
    assert ex.grid.spec["meaning"].startswith("red: ablating the head lowers the task's metric (the head helps)")
    assert scale["label"] == "share of the task's total effect" and ex.grid.spec["raw_unit"] == "logit diff"
    _, raw, shown, ranks, _ = grid_arrays(ex)
    np.testing.assert_allclose(raw, ex.scores.values, rtol=1e-6)
    np.testing.assert_allclose(shown, share, rtol=1e-6)
    assert (ranks[1] == ex.scores.rank("Beta")).all()
    assert ex.state.message == "" and "2 of 2 tasks shown" in ex.status.value and "height:1.5em" in ex.status.value
    assert ex.details_out.outputs == ()  # nothing stale on first display


def test_selection_controls_redraw_from_cached_numbers(tasks, calls):
    ex, _ = make(tasks, scores=fake_scores())
    c, share = ex.controls, ex.scores.normalized("share")
    c["select"].value = "threshold"
    thr = float(np.sort(share[0].ravel())[-3])  # 3 heads of Alpha pass
    c["threshold_value"].value = thr
    assert selected(ex)[0].sum() == 3 and (selected(ex)[1] == (share[1] >= thr)).all()
    assert ex.grid.spec["panels"][0]["label"] == f"3 with s ≥ {thr:.3g}" and c["unit"].value == "share of Σ|s|"
    c["by"].value = "abs"
    assert (selected(ex)[1] == (np.abs(share[1]) >= thr)).all()
    c["select"].value = "top_k"
    c["k"].value = 2
    keep = selected(ex)
    assert (keep.sum((1, 2)) == 2).all() and ex.grid.spec["panels"][0]["label"] == "top 2 by |s|"
    c["by"].value = "value"
    top = sorted((l, h) for l, h, _ in ex.scores.top("Alpha", 2))
    assert sorted(zip(*np.nonzero(selected(ex)[0]))) == top  # as top() ranks
    c["normalize"].value = "zscore"
    np.testing.assert_allclose(grid_arrays(ex)[2], ex.scores.normalized("zscore"), rtol=1e-5)
    c["tasks"].chips["Alpha"].value = False  # a chip click
    assert c["tasks"].value == ("Beta",) and titles(ex) == ["Beta"] and "1 of 2 tasks shown" in ex.status.value
    assert calls == []  # all of it from the cached scores


def test_scale_clip_marks_the_cells_beyond(tasks, calls):
    ex, _ = make(tasks, scores=fake_scores())
    share = np.abs(ex.scores.normalized("share"))
    ex.controls["clip"].value = 95.0
    assert ex.state.clip == 95.0  # the control is a view of the state
    limit = np.percentile(share, 95.0)
    assert ex.grid.spec["scale"]["hi"] == pytest.approx(limit)
    flags = grid_arrays(ex)[4]
    beyond = (flags & (canvas.FLAG["above"] | canvas.FLAG["below"])) > 0
    assert (beyond == (share > limit * (1 + 1e-9))).all() and beyond.any()
    assert ex.grid.spec["scale"]["ticks"][-1]["text"].endswith("+") and "clipped at the 95th" in ex.status.value
    ex.state.clip = 0.0  # the state drives the control and the grid
    assert ex.controls["clip"].value == 0.0 and ex.grid.spec["scale"]["hi"] == pytest.approx(share.max())
    assert not (grid_arrays(ex)[4] & (canvas.FLAG["above"] | canvas.FLAG["below"])).any()


def test_out_of_range_input_is_an_error_not_a_clamp(tasks, calls, tiny_model):
    ex, _ = make(tasks, scores=fake_scores(), models={"tiny": tiny_model})
    c = ex.controls
    c["select"].value = "top_k"
    c["k"].value = 99
    assert ex.state.message == "⚠ k must be between 1 and 8 (heads in the map), got 99" and ex.state.k == 99
    assert "Error" not in ex.message.value  # words, not class names
    c["k"].value = 3
    assert ex.state.message == ""
    c["layer"].value = 45
    c["show"].click()
    assert "no head L45.H0: layers are 0–1" in ex.state.message and c["layer"].value == 45
    c["tasks"].value = ()
    assert "no task selected" in ex.state.message and ex.grid.spec["panels"] == []


def test_method_change_computes_task_by_task_in_a_thread(tasks, calls):
    ex, loads = make(tasks, scores=fake_scores(), models={"tiny": lambda: "bridge-a", "other": lambda: "bridge-b"})
    ex.controls["method"].value = "ablation · zero"
    ex.wait(10)
    # one call per task (progress counts tasks, a cancel keeps the finished ones), then one from the cache
    assert calls == [
        ("bridge-a", ["Alpha"], "ablation", "zero"),
        ("bridge-a", ["Beta"], "ablation", "zero"),
        ("bridge-a", ["Alpha", "Beta"], "ablation", "zero"),
    ]
    assert ex.scores.method == "ablation" and ex.shown == ("tiny", "ablation · zero") and ex.state.message == ""
    ex.controls["method"].value = "attribution · resample"  # seeded: cached
    ex.controls["method"].value = "ablation · zero"  # computed once already
    ex.wait(10)
    assert len(calls) == 3
    ex.controls["model"].value = "other"
    ex.wait(10)
    assert calls[-1][0] == "bridge-b" and ex.shown == ("other", "ablation · zero")
    ex.controls["method"].value = "probe · logistic"  # a joint scorer: all tasks in one call
    ex.wait(10)
    assert calls[-2:] == [("bridge-b", ["Alpha", "Beta"], "probe", "logistic")] * 2


def test_a_long_job_asks_first(tasks, calls, monkeypatch):
    monkeypatch.setattr(scoring, "estimate", lambda *a, **k: scoring.Estimate(["Alpha", "Beta"], 1e9, 940.0))
    ex, _ = make(tasks, scores=fake_scores())
    before = ex.state.snapshot()
    ex.controls["method"].value = "ablation · resample"
    ex.wait(10)
    assert calls == [] and ex.ui.ask_box.layout.display == "flex" and ex.ui.job_box.layout.display == "none"
    assert ex.state.job.question == "about 16 min here (2 of 2 tasks to compute, the rest cached). Run it?"
    assert "ablation · resample on tiny, for map A" in ex.ui.question.value
    assert ex.controls["method"].value == "attribution · resample"  # the menu shows what is on screen
    assert ex.state.snapshot() == before
    ex.controls["keep"].click()
    assert ex.ui.ask_box.layout.display == "none" and calls == [] and ex.state.job is None
    ex.controls["method"].value = "ablation · resample"
    ex.wait(10)
    ex.controls["run"].click()
    ex.wait(10)
    assert ex.shown == ("tiny", "ablation · resample") and len(calls) == 3


def test_cancel_stops_within_a_second_and_keeps_finished_tasks(tasks, calls, monkeypatch):
    finished = []

    def slow_score(model, tasks, method="attribution", ablation="resample", **kwargs):
        bar = progress.bar(1000, "steps")
        for _ in range(1000):
            time.sleep(0.01)  # a forward pass
            bar.update(1)
        finished.append([t.name for t in tasks])
        return fake_scores(method, ablation, names=[t.name for t in tasks])

    ex, _ = make(tasks, scores=fake_scores())
    monkeypatch.setattr(scoring, "score", slow_score)
    before = ex.state.snapshot()
    ex.controls["method"].value = "ablation · mean"
    time.sleep(0.3)
    assert ex.ui.job_box.layout.display == "flex" and ex.controls["method"].disabled
    assert ex.ui.counter.value.startswith("task 1 of 2 · Alpha · ") and 0 < ex.ui.bar.value < 0.5
    # the view stays live meanwhile, on the scores on screen
    ex.controls["select"].value = "top_k"
    ex.controls["k"].value = 2
    assert selected(ex).sum() == 4 and ex.state.message == ""
    start = time.monotonic()
    ex.controls["cancel"].click()
    ex.wait(5)
    assert time.monotonic() - start < 1.0 and finished == []
    assert ex.state.message.startswith("cancelled ablation · mean on tiny, for map A: 0 of 2 tasks finished")
    assert ex.controls["method"].value == "attribution · resample" and not ex.controls["method"].disabled
    assert ex.state.snapshot() == {**before, "select": "top_k", "k": 2}  # as before the job, and the view kept
    assert selected(ex).sum() == 4 and ex.ui.job_box.layout.display == "none" and ex.state.job is None


def test_block_hooks_stop_a_forward_pass(tiny_model):
    """The stop check runs before every block, in the watching thread only, and leaves the cache usable."""
    import torch

    from headlab.engine.forward import final_resid

    tokens = torch.tensor([[1, 2, 3, 4]])
    seen = []
    with progress.watching(lambda *a: None, model=tiny_model, stop=lambda: seen.append(1) or len(seen) > 1):
        assert not hooks.hooks_active(tiny_model)
        with pytest.raises(progress.Cancelled):
            final_resid(tiny_model, tokens)
        other = []
        t = threading.Thread(target=lambda: other.append(final_resid(tiny_model, tokens)))
        t.start()
        t.join()
        assert len(other) == 1  # another thread's pass is not stopped
    assert len(seen) == 2  # stopped before the second block
    final_resid(tiny_model, tokens)  # the hooks are gone


def test_readouts_follow_the_scores_on_screen(tasks, tiny_model, calls):
    ex, _ = make(tasks, scores=fake_scores(), models={"tiny": tiny_model})
    ex.details("Beta", 1, 2)
    assert "L1.H2 in Beta · attribution · resample on tiny" in ex.details_out.outputs[0]["data"]["text/plain"]
    version = ex.grid.spec["version"]
    ex.controls["method"].value = "ablation · zero"
    ex.wait(10)
    assert ex.grid.spec["version"] > version  # the canvas clears its hover line on a new version
    assert ex.details_out.outputs[0]["data"]["text/plain"].startswith("(head details cleared: the scores changed")
    assert "ablation · zero on tiny" in ex.status.value
    assert ex.curve_out.outputs == ()  # no curve was drawn: none is said to be cleared
    ex.details("Beta", 1, 2)
    ex.controls["tasks"].value = ("Alpha",)
    assert "its task is no longer shown" in ex.details_out.outputs[0]["data"]["text/plain"]


def test_details_value_rank_pattern_and_item(tasks, tiny_model, calls):
    seed = fake_scores()
    ex, _ = make(tasks, scores=seed, models={"tiny": tiny_model})
    info = ex.details("Beta", 1, 2)
    assert info.value == pytest.approx(seed.values[1, 1, 2]) and info.rank == seed.rank("Beta")[1, 2]
    assert info.shown == pytest.approx(seed.normalized("share")[1, 1, 2]) and info.n_heads == L * H
    assert info.tokens[0] == "<|bos|>" and "".join(info.tokens[1:]) == PROMPTS["Beta"][0]
    np.testing.assert_allclose(info.pattern.sum(-1), 1, atol=1e-5)
    text, image = ex.details_out.outputs
    assert info.summary() in text["data"]["text/plain"]
    assert base64.b64decode(image["data"]["image/png"], validate=True).startswith(b"\x89PNG")
    second = ex.details("Beta", 1, 2, item=1)
    assert "".join(second.tokens[1:]) == PROMPTS["Beta"][1] and "prompt 1" in second.summary()
    # a click on the canvas: the form follows the clicked head, the details come (a job), the busy line is replaced
    ex.grid._on_msg(ex.grid, {"event": "click", "panel": 0, "layer": 1, "head": 3}, [])
    ex.wait(30)
    c = ex.controls
    assert (c["detail_task"].value, c["layer"].value, c["head"].value) == ("Alpha", 1, 3)
    assert "L1.H3 in Alpha" in ex.details_out.outputs[0]["data"]["text/plain"]
    assert ex.grid.status.startswith("details: L1.H3 · Alpha") and ex.state.message == ""
    assert [label for label, _ in c["item"].options][1].startswith("1: A dog ran")


def test_ci_toggle_marks_bootstrap_significance(tasks, calls, monkeypatch):
    from headlab.analysis import stats

    made = []
    real = stats.bootstrap
    monkeypatch.setattr(stats, "bootstrap", lambda s, **kw: made.append(s) or real(s, **kw))
    seed = fake_scores(n_items=6)
    seed.per_example[:, :, 0] += 3.0
    seed.values[:] = seed.per_example.mean(1)
    ex, _ = make(tasks, scores=seed)
    ci = ex.controls["ci"]
    assert not ci.disabled and made == []
    ci.value = True
    sig = (grid_arrays(ex)[4] & canvas.FLAG["significant"]) > 0
    assert (sig == real(seed).significant).all() and sig[:, 0].all() and made == [seed]
    assert any(e["text"] == "● 95% CI excludes 0" for e in ex.grid.spec["legend"])
    ci.value = False
    ci.value = True
    assert made == [seed]  # computed once for these scores
    ex2, _ = make(tasks, scores=fake_scores(n_items=1))
    assert ex2.controls["ci"].disabled and ex2.controls["ci"].tooltip.startswith("CI unavailable:")
    ex2.state.ci = True  # refused in words, even from code
    assert not ex2.state.ci and ex2.state.message.startswith("CI unavailable:") and not ex2.controls["ci"].value


def test_compare_with_an_uncomputed_method_keeps_map_a(tasks, calls):
    """The newcomer's first compare: map A stays on screen and in the menus while B computes, then B arrives
    beside it; Compare never becomes the main map."""
    seed = fake_scores()
    ex, _ = make(tasks, scores=seed)
    c = ex.controls
    labels = [label for label, _ in c["compare"].options]
    assert labels[0] == "— none —" and "method: ablation · zero" in labels
    c["compare"].value = ("tiny", "ablation · zero")
    assert ex.state.job is not None and ex.state.job.role == "B"
    assert ex.state.compare == () and c["compare"].value == ()  # not in the state until it is computed
    assert c["method"].value == "attribution · resample" and titles(ex) == ["Alpha", "Beta"]
    ex.wait(10)
    assert ex.state.a == ("tiny", "attribution · resample") and ex.scores is seed  # A kept
    assert ex.state.compare == ("tiny", "ablation · zero") and c["compare"].value == ex.state.compare
    assert c["method"].value == "attribution · resample" and ex.state.job is None
    assert titles(ex) == [
        "Alpha · A: attribution · resample",
        "Alpha · B: ablation · zero",
        "Beta · A: attribution · resample",
        "Beta · B: ablation · zero",
    ]
    assert "A: attribution · resample on tiny | B: ablation · zero on tiny (side by side)" in ex.status.value
    # the selection ranks each map on its own; the difference ranks |A − B|
    other = ex.store[("tiny", "ablation · zero")]
    np.testing.assert_allclose(grid_arrays(ex)[2][1], other.normalized("share")[0], rtol=1e-6)
    ex.state.select, ex.state.k = "top_k", 2
    c["compare_mode"].value = "difference"
    diff = ex.scores.normalized("share") - other.normalized("share")
    assert titles(ex) == ["Alpha: A − B", "Beta: A − B"]
    np.testing.assert_allclose(grid_arrays(ex)[1], diff, rtol=1e-5, atol=1e-7)
    for t in range(2):
        biggest = np.argsort(-np.abs(diff[t]), axis=None)[:2]
        assert sorted(np.flatnonzero(selected(ex)[t])) == sorted(biggest)  # the largest either way
    assert ex.grid.spec["panels"][0]["label"] == "top 2 by |A − B|" and "by |A − B|" in ex.status.value
    assert ex.grid.spec["meaning"].startswith("red: map A scores the head higher than map B")
    c["compare"].value = ()
    assert titles(ex) == ["Alpha", "Beta"] and ex.state.compare == ()


def test_cancel_mid_compare_restores_the_state(tasks, calls, monkeypatch):
    started = threading.Event()

    def slow_score(model, tasks, method="attribution", ablation="resample", **kwargs):
        bar = progress.bar(1000, "steps")
        started.set()
        for _ in range(1000):
            time.sleep(0.01)
            bar.update(1)
        return fake_scores(method, ablation, names=[t.name for t in tasks])

    ex, _ = make(tasks, scores=fake_scores())
    before, drawn = ex.state.snapshot(), titles(ex)
    monkeypatch.setattr(scoring, "score", slow_score)
    ex.controls["compare"].value = ("tiny", "ablation · mean")
    assert started.wait(5)
    assert ex.ui.counter.value.startswith("task 1 of 2 · Alpha")
    ex.controls["cancel"].click()
    ex.wait(5)
    assert ex.state.snapshot() == before and ex.state.job is None
    assert ex.controls["compare"].value == () and titles(ex) == drawn and "B:" not in ex.status.value
    assert ex.state.message.startswith("cancelled ablation · mean on tiny, for map B: 0 of 2 tasks finished")
    assert ("tiny", "ablation · mean") not in ex.store


def test_save_html_is_standalone_and_never_overwrites(tasks, calls, tmp_path):
    ex, _ = make(tasks, scores=fake_scores())
    ex.controls["select"].value = "top_k"
    ex.controls["k"].value = 3
    path = ex.save_html(tmp_path / "map.html")
    page = path.read_text()
    assert "http://" not in page and "https://" not in page and "<script src" not in page  # nothing fetched
    assert "function mount(" in page and "top 3 by s" in page
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ex.save_html(path)
    ex.save_html(path, overwrite=True)
    with pytest.raises(ValueError, match="ending in .html"):
        ex.save_html(tmp_path / "map.png")


def test_seeded_without_tasks_loads_builtin_lazily(calls):
    ex = widgets.explorer(models={"tiny": lambda: "bridge"}, scores=fake_scores())
    assert ex.controls["tasks"].value == ("Alpha", "Beta") and ex.state.message == ""
    ex.controls["method"].value = "attribution · zero"  # needs the Task objects: not built-in names
    ex.wait(10)
    assert ex.state.message.startswith("⚠ unknown built-in task") and calls == []
    assert ex.controls["method"].value == "attribution · resample"


def test_score_error_is_one_line(tasks, calls, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nTraceback (most recent call last): ...")

    ex, _ = make(tasks, scores=fake_scores())
    monkeypatch.setattr(scoring, "score", broken)
    shown = ex.scores
    ex.controls["method"].value = "ablation · mean"
    ex.wait(10)
    assert ex.state.message == "⚠ it failed: out of memory"
    assert "Traceback" not in ex.message.value and "RuntimeError" not in ex.message.value
    assert ex.scores is shown and ex.controls["method"].value == "attribution · resample"


def test_computes_at_start_without_seed(tasks, calls):
    ex, loads = make(tasks, methods=["ablation · zero", ("attribution", "mean")])
    assert list(ex.controls["method"].options) == ["ablation · zero", "attribution · mean"]
    assert loads == [1] and calls[-1] == ("bridge", ["Alpha", "Beta"], "ablation", "zero")
    with pytest.raises(ValueError, match="unknown method"):
        make(tasks, methods=["gradient"])


def test_canvas_state_packs_every_head():
    from headlab.viz import display

    s = fake_scores(n_items=1)
    s.values[1, 0, 0] = np.nan
    sel = display.Selection(top_k=3)
    panels = display.task_panels(s, s.tasks, "share", sel)
    scale = display.scale_of([p.shown for p in panels], "share", vmax=0.05)
    st = canvas.state(panels, scale, unit="u", label="l")
    flags = np.frombuffer(st["flags"], np.uint8).reshape(2, L, H)
    assert ((flags & canvas.FLAG["selected"]) > 0).sum() == 6
    assert (flags[1, 0, 0] & canvas.FLAG["missing"]) and not (flags[0, 0, 0] & canvas.FLAG["missing"])
    above = (flags & canvas.FLAG["above"]) > 0
    assert (above == (np.nan_to_num(s.normalized("share")) > 0.05)).all()
    colors = np.frombuffer(st["colors"], np.uint8).reshape(2, L, H, 4)
    assert (colors == np.stack([display.shade(p.shown, scale, p.selected) for p in panels])).all()
    assert st["spec"]["scale"]["ticks"][-1]["text"].endswith("+")


def test_top_k_shows_the_faithfulness_curve_of_the_details_task(tasks, tiny_model, calls):
    from headlab.analysis.validation import faithfulness

    seed = fake_scores()
    ex, _ = make(tasks, scores=seed, models={"tiny": tiny_model})
    c = ex.controls
    c["select"].value = "top_k"
    c["k"].value = 2
    c["detail_task"].value = "Beta"
    c["curve"].value = True
    ex.wait(120)
    assert ex.state.message == "" and ex.curve is not None and ex.state.curve == (*ex.state.a, "Beta", "value")
    caption, image = ex.curve_out.outputs
    assert caption["data"]["text/plain"] == "Beta · attribution · resample on tiny · dashed line: k = 2"
    assert base64.b64decode(image["data"]["image/png"], validate=True).startswith(b"\x89PNG")
    direct = faithfulness(tiny_model, {"attribution · resample": seed}, [tasks[1]], ks=(1, 2, 4), progress=False)
    shown = ex.curve.axes[0].lines[0]
    np.testing.assert_allclose(shown.get_xdata(), [1, 2, 4])
    np.testing.assert_allclose(shown.get_ydata(), direct.metric[0, 0])
    c["curve"].value = False
    assert ex.curve_out.outputs == () and ex.curve is None


def test_verified_heads_are_marked_and_the_rest_read_as_estimates(tasks, calls):
    s = fake_scores(method="verified")
    mask = np.zeros(s.shape, dtype=bool)
    mask[0, 1, 2] = mask[1, 0, 0] = True
    s = replace(s, verified=mask)
    ex, _ = make(tasks, scores=s)
    flags = grid_arrays(ex)[4]
    assert (((flags & canvas.FLAG["verified"]) > 0) == mask).all()  # no selection: on every head
    assert ex.grid.spec["has_verified"] and "□ verified by exact ablation" in legend(ex)
    # with a selection, marks are drawn on the selected heads only, unless asked for on all
    ex.state.select, ex.state.k = "top_k", 1
    keep = selected(ex)
    verified = (grid_arrays(ex)[4] & canvas.FLAG["verified"]) > 0
    assert (verified == (mask & keep)).all() and (mask & ~keep).any()  # one verified head is not selected
    clip = canvas.FLAG["above"] | canvas.FLAG["below"]
    assert not (grid_arrays(ex)[4][~keep] & clip).any()  # ▲▼ neither: a greyed head shows no colour
    ex.controls["marks"].value = "all"
    assert ex.state.marks == "all" and (((grid_arrays(ex)[4] & canvas.FLAG["verified"]) > 0) == mask).all()
    assert (grid_arrays(ex)[4][~keep] & clip).any()


def test_scores_show_under_the_entry_that_computed_them(tasks, calls):
    """A map is never shown under another computation's label: an integrated-gradient map under its IG entry;
    a map of options no entry runs under an entry of its own (what differs named), which picking again shows
    without computing; and picking plain attribution computes plain attribution, not the map given."""

    def attribution(**options):
        s = fake_scores()
        params = {**s.params, **options}
        return replace(s, params=params)

    ex, _ = make(tasks, scores=attribution(steps=4, path="activations"))
    assert ex.controls["method"].value == "attribution · resample · IG m=4" and not calls
    eight = attribution(steps=8)
    ex, _ = make(tasks, scores=eight)
    label = "attribution · resample · steps=8"
    assert ex.controls["method"].value == label and ex.methods[label] == (
        "attribution",
        {"ablation": "resample", "steps": 8},
    )
    np.testing.assert_array_equal(ex.scores.values, eight.values)
    ex.controls["method"].value = "attribution · resample"
    ex.wait(10)
    assert calls and calls[-1][2:] == ("attribution", "resample")  # computed: the steps=8 map is not plain
    assert not np.array_equal(ex.scores.values, eight.values)
    n = len(calls)
    ex.controls["method"].value = label
    ex.wait(10)
    assert len(calls) == n and np.array_equal(ex.scores.values, eight.values)  # the given map, kept


def test_a_map_that_is_never_negative_gets_sequential_colours(tasks, calls):
    s = fake_scores(method="probe", ablation=None)
    s.values[:] = np.abs(s.values)
    ex, _ = make(tasks, scores=s)
    scale = ex.grid.spec["scale"]
    assert scale["cmap"] == "viridis" and scale["lo"] == 0 and scale["hi"] > 0
    assert ex.grid.spec["meaning"].startswith("yellow: the largest values")
    assert scale["label"] == "share of the task's total score"
    signed, _ = make(tasks, scores=fake_scores())
    assert signed.grid.spec["scale"]["cmap"] == "RdBu_r"


class Remote:
    """A stand-in of a model loaded with engine="ndif"."""

    engine = "ndif"


def test_remote_models_are_marked_and_offer_only_the_methods_their_engine_runs(tasks, calls):
    from headlab import scorers

    ex, _ = make(tasks, scores=fake_scores(), models={"tiny": lambda: "bridge", "llama-70b": Remote()})
    labels = [label for label, _ in ex.controls["model"].options]
    assert labels == ["tiny", "llama-70b · NDIF (remote)"]
    assert "method: gating · 3 seeds" in [label for label, _ in ex.controls["compare"].options]
    ex.state.compare = ()
    ex.controls["model"].value = "llama-70b"  # its attribution · resample map is not computed: a job
    ex.wait(10)
    assert ex.state.model == "llama-70b" and calls[-1][0].__class__ is Remote
    offered = list(ex.controls["method"].options)
    assert offered and all("ndif" in scorers.get(ex.methods[m][0]).engines for m in offered)
    assert "gating · 3 seeds" not in offered and "attribution · resample" in offered
    ex.controls["method"].value = "attribution · resample"
    ex.state.message = ""
    ex._on_pick("method", "gating · 3 seeds")  # a method the engine cannot run is refused in words
    assert ex.state.message == "⚠ gating · 3 seeds does not run on llama-70b's engine (ndif): pick another method"


def test_a_long_faithfulness_curve_asks_first_and_counts(tasks, tiny_model, calls, monkeypatch):
    from headlab.viz.explorer import jobs

    monkeypatch.setattr(jobs, "curve_seconds", lambda bridge, task, n_ks: 200.0)
    ex, _ = make(tasks, scores=fake_scores(), models={"tiny": tiny_model})
    ex.state.select, ex.state.k = "top_k", 2
    ex.controls["curve"].value = True
    ex.wait(30)
    job = ex.state.job
    assert job.question == "about 3 min here (34 masked runs of Alpha's items). Run it?"
    assert ex.ui.ask_box.layout.display == "flex" and ex.curve is None and not ex.controls["curve"].value
    counters = []
    job.observe(lambda ch: counters.append(ch["new"]), names="counter")
    ex.controls["run"].click()
    ex.wait(120)
    assert ex.curve is not None and ex.state.job is None and ex.state.curve[2] == "Alpha"
    assert any(c.startswith("faithfulness · Alpha · ") and "/" in c for c in counters), counters


def test_a_click_on_a_slow_model_asks_before_head_details(tasks, tiny_model, calls, monkeypatch):
    from headlab.viz.explorer import jobs

    ex, _ = make(tasks, scores=fake_scores(), models={"tiny": tiny_model})
    monkeypatch.setattr(jobs, "details_seconds", lambda bridge, task: 120.0)
    ex.grid._on_msg(ex.grid, {"event": "click", "panel": 1, "layer": 1, "head": 2}, [])
    ex.wait(30)
    assert (
        ex.details_out.outputs == () and ex.state.job.question == "about 2 min here (one pass of one prompt). Run it?"
    )
    assert ex.state.job.what == "head details of L1.H2 · Beta" and ex.ui.ask_box.layout.display == "flex"
    assert (ex.controls["detail_task"].value, ex.controls["layer"].value, ex.controls["head"].value) == ("Beta", 1, 2)
    ex.controls["run"].click()
    ex.wait(30)
    assert "L1.H2 in Beta" in ex.details_out.outputs[0]["data"]["text/plain"] and ex.state.job is None
    assert ex.state.details == ("tiny", "attribution · resample", "Beta", 1, 2, 0)


def test_the_state_drives_every_control(tasks, calls):
    ex, _ = make(tasks, scores=fake_scores(n_items=6))
    s, c = ex.state, ex.controls
    s.normalize, s.select, s.by, s.k, s.tasks, s.ci, s.marks = "zscore", "top_k", "abs", 3, ("Beta",), True, "all"
    assert (c["normalize"].value, c["select"].value, c["by"].value, c["k"].value) == ("zscore", "top_k", "abs", 3)
    assert c["tasks"].value == ("Beta",) and not c["tasks"].chips["Alpha"].value and c["ci"].value
    assert titles(ex) == ["Beta"] and ex.grid.spec["panels"][0]["label"] == "top 3 by |s|"
    s.threshold, s.select = 5.0, "threshold"  # outside the values shown when picked: moved, and said so
    assert s.threshold < 5.0 and s.message.startswith("threshold 5 is outside the values shown: moved to")
    lo, hi = (10 ** c["threshold"].min, 10 ** c["threshold"].max)
    assert c["range"].value == f"range {lo:.3g} – {hi:.3g}" and lo <= c["threshold"].value <= hi
