"""Never silent, round two (issue #32): a caller's object is never changed behind their back (class 3), work is
bounded and shows its progress (class 6), hand-built or wrong inputs never crash deep in a library (class 7),
and summaries describe what ran (class 8).

Every refusal is checked to be one line naming the argument, its value and the fix; every safe outcome is
checked by what it produced (the caller's weights bit for bit, the explorer's panel, the heads selected).
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from headlab.analysis import compare, stats
from headlab.analysis.interventions import head_means
from headlab.analysis.selection import elbow_count, select_heads
from headlab.analysis.steering import steering_sweep
from headlab.analysis.validation import Faithfulness, Validation, check_draws, faithfulness, validate
from headlab.engine import budget, progress
from headlab.models import ModelLoadError, describe, load_model
from headlab.results import HeadScores
from headlab.scorers import attribution, gating, probe, verified
from headlab.scoring import score
from headlab.tasks import Task
from headlab.testing import byte_tokenizer, head_scores, tiny, tiny_hf
from headlab.viz import explorer as widgets
from headlab.viz import plot
from headlab.viz.curves import faithfulness_grid, faithfulness_plot

L, H = 3, 4  # conftest's tiny_model


def one_line(err: pytest.ExceptionInfo, pattern: str) -> str:
    """The message, checked to be one line matching ``pattern``."""
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert re.search(pattern, msg), msg
    return msg


def weights(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def bit_identical(before: dict, module) -> bool:
    after = module.state_dict()
    return before.keys() == after.keys() and all(
        before[k].dtype == after[k].dtype and before[k].device == after[k].device and torch.equal(before[k], after[k])
        for k in before
    )


def hand(values, tasks=("A", "B"), method="ablation", params=None, info=None, n_items=3) -> HeadScores:
    """A hand-built map: per-item scores around ``values`` (T, L, H)."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(0)
    per = np.repeat(v[:, None], n_items, 1) + rng.normal(0, 0.01, (len(v), n_items, *v.shape[1:]))
    info = info or describe(tiny(n_layers=v.shape[1], n_heads=v.shape[2], d_model=16 * v.shape[2]))
    return head_scores(v, per_example=per, tasks=tasks, model=info, method=method, params=params or {})


def recorded(fn):
    """``fn()`` under a progress watcher: its result and every (desc, done, total) reported."""
    seen = []
    with progress.watching(lambda desc, done, total: seen.append((desc, done, total))):
        out = fn()
    return out, seen


def finished(seen, prefix: str) -> tuple[int, list[int]]:
    """The total of the bar whose description starts with ``prefix``, and the counts it reported."""
    steps = [(done, total) for desc, done, total in seen if desc.startswith(prefix)]
    assert steps, f"no progress reported as {prefix!r}: {sorted({d for d, *_ in seen})}"
    return steps[-1][1], [done for done, _ in steps]


@pytest.fixture(scope="module")
def on_tiny(tiny_model):
    """A map of conftest's tiny model (its name and shape), task "Toy"."""
    info = describe(tiny_model)
    values = np.linspace(-1, 1, L * H).reshape(1, L, H)
    return hand(values, ("Toy",), "attribution", {"ablation": "resample", "metric": "logit_diff"}, info, n_items=6)


# --- class 3: a caller's object is never changed behind their back -----------------------------------------


def _bridge():
    return tiny(n_layers=2, n_heads=4, d_model=32)


def _hf():
    return tiny_hf()


REFUSED_MOVES = [
    pytest.param(
        _bridge,
        {"dtype": "bfloat16"},
        r"^dtype='bfloat16': your bridge is float32 on cpu, .*do it yourself first, bridge\.to\(torch\.bfloat16\)",
        id="issue: load_model(bridge, dtype='bfloat16') refuses, the float32 bridge is not rounded",
    ),
    pytest.param(
        _hf,
        {"dtype": "float16"},
        r"^dtype='float16': your hf_model is float32 on cpu, .*hf_model\.to\(torch\.float16\)",
        id="issue: load_model(hf_model, dtype='float16') refuses, the caller's model is not converted",
    ),
    pytest.param(
        _bridge,
        {"dtype": torch.float16},
        r"^dtype=torch\.float16: your bridge is float32 .*bridge\.to\(torch\.float16\)",
        id="a torch.dtype object is refused the same way",
    ),
    pytest.param(
        _hf,
        {"device": "meta"},
        r"^device='meta' holds tensor shapes without data: .*use 'cpu', 'cuda' or 'auto'",
        id="issue: device='meta' would empty the weights",
    ),
    pytest.param(
        _bridge,
        {"device": torch.device("meta")},
        r"^device=device\(type='meta'\) holds tensor shapes without data",
        id="a torch.device('meta') object too",
    ),
    pytest.param(
        _bridge,
        {"dtype": torch.int8},
        r"^dtype=torch\.int8: converting weights to int8 would destroy them .*use 'auto', 'float32'",
        id="dtype=torch.int8 would destroy the weights",
    ),
    pytest.param(
        _hf,
        {"dtype": "float64"},
        r"^dtype='float64': headlab runs float32, bfloat16 or float16 weights .*use 'float32'",
        id="dtype='float64' says what headlab runs",
    ),
]


@pytest.mark.parametrize("build, kwargs, pattern", REFUSED_MOVES)
def test_a_model_passed_in_is_never_moved_or_converted(build, kwargs, pattern):
    model = build()
    before = weights(model)
    with pytest.raises(ModelLoadError) as err:
        load_model(model, **({"tokenizer": byte_tokenizer()} if build is _hf else {}), **kwargs)
    one_line(err, pattern)
    assert bit_identical(before, model)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"device": "cpu", "dtype": "float32"}, id="the device and dtype it has, by name"),
        pytest.param({"device": torch.device("cpu"), "dtype": torch.float32}, id="as torch objects"),
        pytest.param({"device": "cpu:0", "dtype": "fp32"}, id="as an indexed device and an alias"),
    ],
)
def test_the_placement_a_model_already_has_is_accepted(kwargs):
    bridge = _bridge()
    before = weights(bridge)
    assert load_model(bridge, **kwargs) is bridge and bit_identical(before, bridge)


@pytest.mark.parametrize(
    "device, pattern",
    [
        pytest.param("cuda ", r"^device='cuda ' is not a device \(did you mean 'cuda'\?\): use 'auto'", id="a space"),
        pytest.param("CPU", r"^device='CPU' is not a device \(did you mean 'cpu'\?\)", id="capitals"),
        pytest.param("xpu", r"^device='xpu': headlab runs on cpu, cuda or mps devices, not xpu", id="an xpu device"),
        pytest.param("hpu:0", r"^device='hpu:0': headlab runs on cpu, cuda or mps devices, not hpu", id="an hpu"),
        pytest.param(True, r"^device=True is not a device: use 'auto', 'cpu'", id="a bool"),
        pytest.param(1.5, r"^device=1\.5 is not a device", id="a float"),
    ],
)
def test_devices_headlab_does_not_run_on_are_one_line(device, pattern):
    with pytest.raises(ModelLoadError) as err:
        load_model(tiny_hf(), tokenizer=byte_tokenizer(), device=device)
    one_line(err, pattern)


def test_the_callers_tokenizer_keeps_its_padding_side():
    tok = byte_tokenizer()
    tok.padding_side = "left"
    bridge = load_model(tiny_hf(), tokenizer=tok)
    assert tok.padding_side == "left" and bridge.tokenizer is not tok and bridge.tokenizer.padding_side == "right"


# --- class 6: work without bound --------------------------------------------------------------------------


def renamed(task: Task, name: str) -> Task:
    return Task(name, task.items, task.source)


def _two_tasks(toy_task):
    return [toy_task, renamed(toy_task, "Toy2")]


REFUSED_WORK = [
    pytest.param(
        lambda m, t, s: score(m, t, method="attribution", steps=10**6, cache=False),
        r"^attribution option steps=1000000: at most 256 integrated-gradient points .*use steps ≤ 256",
        id="issue: attribution steps=10**6",
    ),
    pytest.param(
        lambda m, t, s: score(m, t, method="verified", steps=10**6, cache=False),
        r"^verified option steps=1000000: at most 256 integrated-gradient points",
        id="issue: verified steps=10**6",
    ),
    pytest.param(
        lambda m, t, s: score(m, t, method="attribution", steps=257, path="layers", cache=False),
        r"^attribution option steps=257: at most 256",
        id="one point past the bound, per-layer path",
    ),
    pytest.param(
        lambda m, t, s: score(m, t, method="verified", steps=[255, 256], cache=False),
        r"^verified option steps=\[255, 256\]: these screens run 510 distinct path points, at most 256",
        id="verified screens whose points add up past the bound",
    ),
    pytest.param(
        lambda m, t, s: score(m, t, method="gating", steps=10**6, cache=False),
        r"^gating option steps=1000000: at most 10000 Adam steps per fit .*use steps ≤ 10000",
        id="gating steps=10**6",
    ),
    pytest.param(
        lambda m, t, s: score(m, t, method="gating", seeds=list(range(1000)), cache=False),
        r"^gating option seeds holds 1000 seeds, at most 100 .*give fewer, e\.g\. seeds=\[0, 1, 2\]",
        id="gating seeds=range(1000)",
    ),
    pytest.param(
        lambda m, t, s: score(m, _two_tasks(t), method="probe", epochs=10**6, cache=False),
        r"^probe option epochs=1000000: at most 1000 .*use epochs ≤ 1000",
        id="probe epochs=10**6",
    ),
    pytest.param(
        lambda m, t, s: validate(m, s, t, n_random=10**6),
        r"^n_random=1000000: at most 1000 random sets per k .*use n_random ≤ 1000",
        id="validate n_random=10**6",
    ),
    pytest.param(
        lambda m, t, s: faithfulness(m, s, t, ks=(1, 2), draws=10**6),
        r"^draws=1000000: at most 1000 random sets per k",
        id="faithfulness draws=10**6",
    ),
    pytest.param(
        lambda m, t, s: steering_sweep(m, s, t, alphas=np.linspace(0.1, 100, 1000), k=2),
        r"^alphas holds 1000 strengths, at most 64 \(each runs every task twice\): give fewer",
        id="steering with 1000 strengths",
    ),
    pytest.param(
        lambda m, t, s: steering_sweep(m, s, t, alphas=(1.0, 5.0, 1.0), k=2),
        r"^alphas=\[1\.0, 5\.0, 1\.0\] repeats a strength .*give each α once",
        id="steering with a strength twice",
    ),
    pytest.param(
        lambda m, t, s: stats.bootstrap(s, n=10**6),
        r"^n=1000000 resamples: at most 10000 .*use n ≤ 10000",
        id="bootstrap n=10**6",
    ),
    pytest.param(
        lambda m, t, s: score(m, t, method="verified", candidates=10**6, cache=False),
        r"^verified option candidates=1000000 is more than the 12 heads of this 3 × 4 model: give at most 12",
        id="verified candidates past the model's heads",
    ),
]


@pytest.mark.parametrize("call, pattern", REFUSED_WORK)
def test_absurd_work_is_refused_in_one_line(tiny_model, toy_task, on_tiny, call, pattern):
    with pytest.raises(ValueError) as err:
        call(tiny_model, toy_task, on_tiny)
    one_line(err, pattern)


def test_verified_candidates_are_refused_before_the_screens_run(tiny_model, toy_task, monkeypatch):
    monkeypatch.setattr(verified, "attribute_screens", lambda *a, **k: pytest.fail("the screens ran"))
    with pytest.raises(ValueError, match="candidates=13 is more than the 12 heads"):
        score(tiny_model, toy_task, method="verified", candidates=13, cache=False, progress=False)


@pytest.mark.parametrize(
    "check",
    [
        pytest.param(lambda: attribution.Attribution().check({"steps": attribution.MAX_STEPS}), id="256 IG points"),
        pytest.param(lambda: verified.Verified().check({"steps": [1, 2], "candidates": 12}), id="verified defaults"),
        pytest.param(
            lambda: gating.check_options(steps=gating.MAX_STEPS, seeds=list(range(gating.MAX_SEEDS))),
            id="gating at both bounds",
        ),
        pytest.param(lambda: probe.check_options(epochs=probe.MAX_EPOCHS), id="probe at its bound"),
        pytest.param(lambda: check_draws("draws", 1000), id="1000 draws"),
    ],
)
def test_the_bounds_themselves_are_accepted(check):
    check()


def test_counts_past_the_task_or_model_are_bounded_by_them(toy_task):
    assert len(toy_task.subset(10**6)) == len(toy_task)  # the task's items, no more
    per_item = np.random.default_rng(0).normal(size=(6, L, H))
    assert verified.candidates(per_item, 10**6).all()  # k past the heads: every head, no more


def test_integrated_gradients_advance_per_point(tiny_model, toy_task):
    """Issue: with many points the bar moves per point and batch, not once per task."""
    _, seen = recorded(lambda: score(tiny_model, toy_task, steps=4, cache=False, progress=False))
    total, counts = finished(seen, "attribution/resample · 4 points")
    assert total % 4 == 0 and counts[-1] == total and set(range(1, total + 1)) <= set(counts)


PROGRESS = [
    pytest.param(
        lambda m, t, s: validate(m, s, t, k=2, n_random=10, progress=False),
        "validate",
        1 * (2 + 10),
        id="validate: clean, top-k and each random set",
    ),
    pytest.param(lambda m, t, s: head_means(m, t, batch_size=2, progress=False), "head means", 3, id="head_means"),
    pytest.param(
        lambda m, t, s: score(m, t, method="gating", seeds=[0], steps=3, cache=False, progress=False),
        "Toy · gating",
        1 * 3 * 3,
        id="gating: seeds × fits × steps",
    ),
    pytest.param(
        lambda m, t, s: score(m, _two_tasks(t), method="probe", folds=2, epochs=3, cache=False, progress=False),
        "probe folds · 3 epochs",
        2 * 3,
        id="probe: folds × epochs",
    ),
]


@pytest.mark.parametrize("call, prefix, total", PROGRESS)
def test_long_computations_report_a_real_total(tiny_model, toy_task, on_tiny, call, prefix, total):
    _, seen = recorded(lambda: call(tiny_model, toy_task, on_tiny))
    got, counts = finished(seen, prefix)
    assert got == total and set(range(1, total + 1)) <= set(counts)  # every step, up to the total


def test_steering_counts_every_forward_pass(tiny_model, toy_task, on_tiny, monkeypatch):
    d_head = tiny_model.cfg.d_head  # directions for every task: the random model gets no half both right and wrong
    monkeypatch.setattr(
        "headlab.analysis.steering.directions", lambda acts, correct, heads: {h: np.zeros(d_head) for h in heads}
    )
    df, seen = recorded(lambda: steering_sweep(tiny_model, on_tiny, toy_task, alphas=(1.0, 3.0), k=2, progress=False))
    total, counts = finished(seen, "steering")
    assert len(df) == 3 and total == 1 + 2 * 2 and set(range(1, total + 1)) <= set(counts)


def test_faithfulness_counts_every_stacked_pass_and_a_kept_task_at_once(tiny_model, toy_task, on_tiny, monkeypatch):
    monkeypatch.setattr(budget, "tokens", lambda model, kind, length=256: 1)  # one head set per pass
    passes = 1 + 2 * (1 + 10)  # the clean run, then per k the map's top k and 10 random sets
    fresh = hand(np.random.default_rng().normal(size=(1, L, H)), ("Toy",), info=on_tiny.model)  # never kept before
    steps = []
    for _ in range(2):  # the second call finds the curves kept
        _, seen = recorded(lambda: faithfulness(tiny_model, fresh, toy_task, ks=(1, 2), draws=10, progress=False))
        total, counts = finished(seen, "faithfulness")
        assert total == passes
        steps.append(counts)
    assert sorted(set(steps[0])) == list(range(passes + 1)) and set(steps[1]) == {0, passes}  # kept: at once


def test_ctrl_c_keeps_the_finished_tasks(tiny_model, toy_task, tmp_path):
    first, second = renamed(toy_task, "First"), renamed(toy_task, "Second")

    def interrupt(desc, done, total):
        if desc.startswith("Second") and done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), progress.watching(interrupt):
        score(tiny_model, [first, second], method="ablation", cache=tmp_path, progress=False)
    again, seen = recorded(
        lambda: score(tiny_model, [first, second], method="ablation", cache=tmp_path, progress=False)
    )
    ran = {desc.split(" · ")[0] for desc, *_ in seen}
    assert ran == {"Second"}  # First was read back, not recomputed
    fresh = score(tiny_model, [first, second], method="ablation", cache=False, progress=False)
    np.testing.assert_array_equal(again.values, fresh.values)


# --- class 7: crashes deep in a library -------------------------------------------------------------------


def _curves(tasks=("A", "B")) -> Faithfulness:
    rng = np.random.default_rng(0)
    T = len(tasks)
    return Faithfulness(
        ["m"],
        list(tasks),
        np.array([1, 2]),
        np.zeros(T),
        np.ones(T),
        rng.normal(size=(1, T, 2)),
        rng.uniform(size=(1, T, 2)),
        rng.normal(size=(T, 2, 10)),
        rng.uniform(size=(T, 2, 10)),
    )


HOW = r"compute them first with headlab\.faithfulness\(model, scores, tasks, ks=\.\.\.\)"
BAD_CURVES = [
    pytest.param(
        lambda c: faithfulness_grid(c.scores),
        TypeError,
        r"^faithfulness_grid\(\) draws faithfulness curves, not a map \(HeadScores\): " + HOW,
        id="issue: faithfulness_grid of a HeadScores",
    ),
    pytest.param(
        lambda c: faithfulness_plot(c.validation),
        TypeError,
        r"^faithfulness_plot\(\) draws faithfulness curves, not validate\(\)'s one-k table \(Validation\): " + HOW,
        id="issue: faithfulness_plot of a Validation",
    ),
    pytest.param(
        lambda c: faithfulness_grid([c.task]),
        TypeError,
        r"^faithfulness_grid\(\) draws faithfulness curves, not a list of Task: " + HOW,
        id="issue: faithfulness_grid of a list of tasks",
    ),
    pytest.param(
        lambda c: faithfulness_plot(None), TypeError, r"curves, not NoneType: " + HOW, id="faithfulness_plot(None)"
    ),
    pytest.param(
        lambda c: faithfulness_grid(c.curves, columns=0),
        ValueError,
        r"^columns must be a whole number ≥ 1 \(panels per row\), got 0$",
        id="issue: columns=0",
    ),
    pytest.param(lambda c: faithfulness_grid(c.curves, columns=True), ValueError, r"got True$", id="columns=True"),
    pytest.param(lambda c: faithfulness_grid(c.curves, columns=2.5), ValueError, r"got 2\.5$", id="columns=2.5"),
    pytest.param(lambda c: faithfulness_grid(c.curves, columns="3"), ValueError, r"got '3'$", id="columns='3'"),
    pytest.param(
        lambda c: faithfulness_grid(c.curves, panel=(0, 2)),
        ValueError,
        r"^panel must be \(width, height\) in inches, two positive numbers, got \(0, 2\)$",
        id="panel of zero width",
    ),
    pytest.param(lambda c: faithfulness_grid(c.curves, panel=(2,)), ValueError, r"got \(2,\)$", id="panel=(2,)"),
    pytest.param(
        lambda c: faithfulness_plot(c.curves, "A", figsize="big"),
        ValueError,
        r"^figsize must be \(width, height\) in inches, .*got 'big'$",
        id="figsize a string",
    ),
    pytest.param(
        lambda c: faithfulness_plot(c.curves, "A", figsize=(8, math.nan)), ValueError, r"got \(8, nan\)$", id="NaN"
    ),
    pytest.param(
        lambda c: faithfulness_plot(c.curves, 0),
        TypeError,
        r"^task= is a task's name, one of \['A', 'B'\], not int 0$",
        id="task an index",
    ),
]


@pytest.mark.parametrize("call, error, pattern", BAD_CURVES)
def test_curve_plots_refuse_what_is_not_curves(toy_task, call, error, pattern):
    class C:
        curves = _curves()
        scores = hand(np.zeros((1, L, H)), ("Toy",))
        validation = Validation(pd.DataFrame(), None, {})
        task = toy_task

    with pytest.raises(error) as err:
        call(C)
    one_line(err, pattern)


def test_curve_plots_still_draw_real_curves():
    assert sum(ax.get_visible() for ax in faithfulness_grid(_curves(), columns=1).axes) == 2
    assert len(faithfulness_plot(_curves(("A",))).axes) == 2


HAND_BUILT = [
    pytest.param("ablation", {}, "ablation · ablation ?", id="issue: params without ablation"),
    pytest.param(
        "ablation", {"ablation": None, "metric": None}, "ablation · ablation ? · metric=None", id="params of None"
    ),
    pytest.param("attribution", {"metric": "logprob"}, "attribution · ablation ? · metric=logprob", id="only a metric"),
    pytest.param("mystery", {}, "mystery · ?", id="a method not in the registry"),
    pytest.param("ablation", {"ablation": "zero", "metric": "logit_diff"}, "ablation · zero", id="a complete record"),
]


@pytest.mark.parametrize("method, params, label", HAND_BUILT)
def test_the_explorer_shows_a_hand_built_map(method, params, label):
    s = hand(np.random.default_rng(1).normal(size=(2, L, H)), method=method, params=params)
    ex = widgets.explorer(models={"hand": lambda: "bridge"}, scores=s)
    assert ex.controls["method"].value == label and ex.scores is s
    assert [p["title"] for p in ex.grid.spec["panels"]] == ["A", "B"] and ex.state.message == ""


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda s: plot.heatmap_grid(s, top_k=3), id="heatmap_grid"),
        pytest.param(lambda s: s.top_table(3), id="top_table"),
        pytest.param(lambda s: s.to_dataframe(), id="to_dataframe"),
        pytest.param(lambda s: select_heads(s, "A", "elbow"), id="select_heads"),
        pytest.param(lambda s: stats.bootstrap(s, n=20), id="stats.bootstrap"),
        pytest.param(lambda s: compare.compare(s, s, k=5), id="compare"),
        pytest.param(repr, id="repr"),
    ],
)
@pytest.mark.parametrize("method, params", [({"method": "mystery"}, {}), ({"method": "attribution"}, {"steps": None})])
def test_hand_built_maps_go_through_every_reader(use, method, params):
    s = hand(np.random.default_rng(2).normal(size=(2, L, H)), params=params, **method)
    assert use(s) is not None


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        pytest.param(
            "params",
            None,
            r"^params must be a dict of how the map was computed \(\{\} when unknown\), not "
            r"NoneType$",
            id="params None",
        ),
        pytest.param("params", [], r"not list$", id="params a list"),
        pytest.param("method", None, r"^method must be the method's name, a non-empty string, not None$", id="method"),
    ],
)
def test_a_map_of_unreadable_metadata_is_refused_when_built(field, value, pattern):
    s = hand(np.zeros((1, L, H)), ("A",))
    args = dict(
        values=s.values,
        tasks=s.tasks,
        model=s.model,
        method=s.method,
        params=s.params,
        n_examples=s.n_examples,
        baseline=s.baseline,
        per_example=s.per_example,
    )
    with pytest.raises(TypeError) as err:
        HeadScores(**{**args, field: value})
    one_line(err, pattern)


# --- class 8: summaries that misdescribe what ran ---------------------------------------------------------


@pytest.mark.parametrize(
    "values, by",
    [
        pytest.param(np.zeros((L, H)), "value", id="issue: the elbow of an all-zero map selects none"),
        pytest.param(np.zeros((L, H)), "abs", id="all-zero, by |s|"),
        pytest.param(np.full((L, H), np.nan), "value", id="all-NaN"),
        pytest.param(-np.ones((L, H)), "value", id="no positive score, by s"),
    ],
)
def test_the_elbow_of_a_map_with_nothing_in_it_selects_none(values, by):
    assert select_heads(hand(values[None], ("A",)), "A", "elbow", by=by) == []


@pytest.mark.parametrize(
    "curve, count",
    [
        pytest.param([0.0, 0.0, 0.0], 0, id="zeros"),
        pytest.param([0.0], 0, id="one zero"),
        pytest.param([], 0, id="empty"),
        pytest.param([5.0, 0.0, 0.0, 0.0], 1, id="one head above zeros"),
        pytest.param([3.0, 3.0, 3.0], 1, id="flat but not zero: the first, as before"),
    ],
)
def test_elbow_count(curve, count):
    assert elbow_count(curve) == count


def _explorer_of(values, select, k=8):
    s = hand(values, ("A",), params={"ablation": "zero", "metric": "logit_diff"})
    ex = widgets.explorer(models={"hand": lambda: "bridge"}, scores=s)
    ex.controls["k"].value = k
    ex.controls["select"].value = select
    flags = np.frombuffer(ex.grid.flags, np.uint8).reshape(-1, L, H)
    return ex.grid.spec["panels"][0]["label"], int((flags[0] & 1).sum()), ex.state.message


@pytest.mark.parametrize(
    "values, select, label, n",
    [
        pytest.param(np.full((1, L, H), np.nan), "top_k", "no scored heads (all 12 NaN)", 0, id="issue: all-NaN top 8"),
        pytest.param(np.zeros((1, L, H)), "elbow", "elbow: none (no s > 0)", 0, id="issue: elbow of zeros, explorer"),
        pytest.param(
            np.where(np.arange(L * H).reshape(1, L, H) < 3, 1.0, np.nan),
            "top_k",
            "top 3 by s (only 3 scored)",
            3,
            id="top 8 of a map with 3 scored heads",
        ),
        pytest.param(np.full((1, L, H), np.nan), "none", "no scored heads (all 12 NaN)", 0, id="all-NaN, no selection"),
    ],
)
def test_explorer_panels_say_what_was_selected(values, select, label, n):
    assert _explorer_of(values, select) == (label, n, "")


def test_a_figure_of_an_all_nan_task_says_it_once():
    values = np.stack([np.full((L, H), np.nan), np.arange(L * H, dtype=float).reshape(L, H)])
    view = plot.heatmap_grid(hand(values), top_k=8)._headlab_view
    assert [c.get_text() for c in view.counts[:2]] == ["no scored heads (all 12 NaN)", "top 8 by s"]


def test_top_table_lists_only_scored_heads():
    values = np.stack([np.full((L, H), np.nan), np.where(np.arange(L * H) < 2, 1.0, np.nan).reshape(L, H)])
    table = hand(values).top_table(3)
    assert "nan" not in table.lower().replace("are nan", "")
    assert "A                        (no scored heads: all 12 are NaN)" in table
    assert table.splitlines()[-1].strip() == "(only 2 scored heads: the other 10 are NaN)"


def test_head_details_of_a_missing_head_give_no_score_and_no_rank():
    info = widgets.HeadDetails("A", 1, 2, math.nan, math.nan, 12, 12, [], np.zeros((0, 0)), None)
    assert "no score (NaN: missing in this map), not ranked" in info.summary() and "rank 12" not in info.summary()


def test_steering_a_task_with_no_head_selected_says_so(tiny_model, toy_task):
    s = hand(-np.ones((1, L, H)), ("Toy",), "attribution", {"ablation": "resample"}, describe(tiny_model), 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = steering_sweep(tiny_model, s, toy_task, alphas=(1.0,), progress=False)
    row = df.loc[("Toy", 0.0)]
    assert len(df) == 1 and row["k"] == 0 and row["note"].startswith("no head selected")
