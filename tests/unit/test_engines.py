"""The engine seam (``load_model(engine=)``): what runs where, what is refused in one line, and how the cache,
``HeadScores`` and the analyses treat the nnsight engine's maps. The maps' equality to the bridge's is proven in
``tests/conformance/test_nnsight_engine.py`` (18 architectures × float32, bfloat16) and on the embedded model in
``tests/integration/test_nnsight_engine.py`` (here and through nnsight's simulation of NDIF)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from headlab.analysis.validation import validate
from headlab.models import ModelLoadError, load_model
from headlab.scoring import score
from headlab.testing import byte_tokenizer, tiny_hf

nnsight_installed = pytest.importorskip("nnsight")


@pytest.fixture(scope="module")
def traced():
    return load_model(tiny_hf(seed=3), tokenizer=byte_tokenizer(), engine="nnsight")


@pytest.fixture(scope="module")
def bridged():
    return load_model(tiny_hf(seed=3), tokenizer=byte_tokenizer())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"engine": "vllm"}, r"engine='vllm' is not an engine: choose from \('bridge', 'nnsight', 'ndif'\)"),
        ({"engine": "nnsight", "simulate": True}, "simulate=True simulates NDIF: pass engine='ndif'"),
        ({"engine": "ndif", "simulate": "yes"}, "simulate must be True or False, got 'yes'"),
        ({"engine": "nnsight", "prepend_bos": 1}, "prepend_bos must be True or False, got 1"),
    ],
    ids=["unknown engine", "simulate without ndif", "simulate not a bool", "prepend_bos not a bool"],
)
def test_bad_engine_arguments_are_one_line(kwargs, message):
    with pytest.raises((ModelLoadError, ValueError), match=message) as info:
        load_model(tiny_hf(), tokenizer=byte_tokenizer(), **kwargs)
    assert "\n" not in str(info.value)


def test_ndif_without_a_key_sends_nothing(monkeypatch):
    from nnsight import CONFIG

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    with pytest.raises(
        ModelLoadError, match="engine='ndif' needs an NDIF API key: .*set NDIF_API_KEY.*nothing was sent"
    ):
        load_model("meta-llama/Llama-3.1-8B", engine="ndif")


def test_ndif_takes_a_hub_id_not_a_loaded_model(monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", "test-key-never-sent")
    with pytest.raises(ModelLoadError, match="engine='ndif' runs a model NDIF serves: pass its Hugging Face id"):
        load_model(tiny_hf(), tokenizer=byte_tokenizer(), engine="ndif")


def test_a_bridge_cannot_change_engine(bridged):
    with pytest.raises(ModelLoadError, match="not a TransformerBridge: pass its name, folder or Hugging Face model"):
        load_model(bridged, engine="nnsight")


def test_gating_is_refused_in_one_line_naming_the_engine(traced, toy_task):
    with pytest.raises(ValueError, match=r"method 'gating' does not run on the nnsight engine: use one of \[") as info:
        score(traced, toy_task, method="gating", cache=False, progress=False)
    assert "\n" not in str(info.value) and "'verified'" in str(info.value) and "'probe'" in str(info.value)


def test_the_layer_path_stays_on_the_bridge(traced, toy_task):
    with pytest.raises(
        ValueError, match="path='layers' runs on engine='bridge' only, and this model is on the nnsight"
    ):
        score(traced, toy_task, method="attribution", steps=2, path="layers", cache=False, progress=False)


def pair(toy_task):
    """Two tasks of the toy items (probing needs classes; the second's prompts start otherwise)."""
    from headlab.tasks import Task

    records = [
        {
            "prompt": "So " + it.prompt,
            "answer": it.answer,
            "counterfactual": "So " + it.counterfactual,
            "counterfactual_answer": it.counterfactual_answer,
        }
        for it in toy_task.items
    ]
    return [toy_task, Task.from_records("Toy2", records)]


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("attribution", {"ablation": "resample", "steps": 3}),
        ("attribution", {"ablation": "zero", "steps": 2}),
        ("attribution", {"ablation": "mean", "steps": 4}),
        ("verified", {"ablation": "resample", "candidates": 3}),  # two screens, the first's estimates kept
        ("verified", {"ablation": "mean", "candidates": 4, "steps": 3}),
        ("probe", {"probe": "logistic", "folds": 2}),
        ("probe", {"probe": "mlp", "folds": 2, "epochs": 2, "pool": "last"}),
    ],
    ids=["IG-resample", "IG-zero", "IG-mean", "verified", "verified-candidates", "probe-logistic", "probe-mlp"],
)
def test_every_scorer_equals_the_bridge_on_a_tiny_model(traced, bridged, toy_task, method, kwargs):
    tasks = pair(toy_task)
    got = score(traced, tasks, method=method, cache=False, progress=False, **kwargs)
    want = score(bridged, tasks, method=method, cache=False, progress=False, **kwargs)
    assert float(np.abs(got.per_example - want.per_example).max()) <= 1e-6
    np.testing.assert_allclose(got.baseline, want.baseline, atol=1e-6)
    if method == "verified":
        assert got.verified.tolist() == want.verified.tolist() and got.params == want.params


def test_verified_ablates_only_its_candidates(traced, toy_task, monkeypatch):
    from headlab.engine import nnsight_engine

    swept, run = [], nnsight_engine.ablation

    def counted(*args, **kwargs):
        for heads, drops, clean in run(*args, **kwargs):
            swept.extend(heads)
            yield heads, drops, clean

    monkeypatch.setattr(nnsight_engine, "ablation", counted)
    got = score(traced, toy_task, method="verified", candidates=3, cache=False, progress=False)
    assert sorted(swept) == sorted(zip(*np.nonzero(got.verified[0]))) and len(swept) == 3


def test_verified_resumes_its_exact_requests(traced, toy_task, monkeypatch, tmp_path):
    """An interrupted verified task keeps its finished exact requests in the partial file; the same call runs only
    the others, and its map equals an uninterrupted one."""
    from headlab.engine import nnsight_engine

    kwargs = dict(method="verified", candidates=4, progress=False)
    want = score(traced, toy_task, cache=False, **kwargs)
    monkeypatch.setattr(nnsight_engine, "ROWS_PER_TRACE", 3 * len(toy_task))  # a copy per trace: 4 requests
    monkeypatch.setattr(nnsight_engine, "TRACES_PER_REQUEST", 1)
    swept, run = [], nnsight_engine.ablation

    def interrupted(*args, **kwargs):
        for heads, drops, clean in run(*args, **kwargs):
            swept.extend(heads)
            yield heads, drops, clean
            if len(swept) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(nnsight_engine, "ablation", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score(traced, toy_task, cache=tmp_path, **kwargs)
    assert len(list(tmp_path.glob("*.partial.npz"))) == 1
    got = score(traced, toy_task, cache=tmp_path, **kwargs)
    assert len(swept) == 4 and len(set(swept)) == 4  # the 2 kept were not run again
    np.testing.assert_array_equal(got.verified, want.verified)
    np.testing.assert_allclose(got.per_example, want.per_example, atol=1e-6)
    assert not list(tmp_path.glob("*.partial.npz"))


def test_integrated_gradients_cut_into_traces_equal_one_trace(traced, toy_task, monkeypatch):
    """Points in one trace each (``POINTS_PER_TRACE`` = 1: a backward holds as much as plain attribution's) equal
    all points in one trace: their sums are kept across traces, and the source run is shared by them."""
    from headlab.engine import nnsight_engine

    kwargs = dict(method="attribution", steps=3, cache=False, progress=False)
    split = {a: score(traced, toy_task, ablation=a, **kwargs) for a in ("mean", "resample")}
    monkeypatch.setattr(nnsight_engine, "POINTS_PER_TRACE", 3)  # every point in one trace
    for ablation, want in split.items():
        got = score(traced, toy_task, ablation=ablation, **kwargs)
        np.testing.assert_allclose(got.per_example, want.per_example, atol=1e-6)


def test_each_engine_has_its_own_key_and_identity(traced, bridged, toy_task, tmp_path):
    a = score(traced, toy_task, method="attribution", cache=tmp_path, progress=False)
    b = score(bridged, toy_task, method="attribution", cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # never the other engine's map
    assert (a.model.engine, b.model.engine) == ("nnsight", "bridge")
    assert a.model.fingerprint != b.model.fingerprint
    np.testing.assert_allclose(a.values, b.values, atol=1e-5)  # the same weights: the same map
    again = score(traced, toy_task, method="attribution", cache=tmp_path, progress=False)
    np.testing.assert_array_equal(again.values, a.values)  # read back
    with pytest.raises(ValueError, match="other weights, config or tokenizer"):
        validate(bridged, a, [toy_task], k=1, progress=False)
    with pytest.warns(UserWarning, match="used on purpose"):
        validate(bridged, a, [toy_task], k=1, progress=False, cross_model=True)


def test_analyses_that_need_the_bridge_say_so(traced, toy_task):
    from headlab.analysis.interventions import mask_heads, steer

    tail = "runs on engine='bridge' only, and this model is on the nnsight engine"
    for context in (mask_heads(traced, [(0, 0)]), steer(traced, {(0, 0): np.zeros(traced.cfg.d_head)}, 1.0)):
        with pytest.raises(ValueError, match=tail):
            context.__enter__()


def test_validate_and_faithfulness_equal_the_bridge(traced, bridged, toy_task):
    from headlab.analysis.validation import faithfulness

    tasks = pair(toy_task)
    maps = [score(m, tasks, method="attribution", cache=False, progress=False) for m in (traced, bridged)]
    for mode in ("zero", "mean"):  # "scale" needs an eps, which validate refuses
        got, want = (
            validate(m, s, tasks, k=2, mode=mode, cross_task=True, progress=False)
            for m, s in zip((traced, bridged), maps)
        )
        np.testing.assert_allclose(got.table.to_numpy(float), want.table.to_numpy(float), atol=1e-6, rtol=1e-4)  # ratio
        np.testing.assert_allclose(got.cross.to_numpy(), want.cross.to_numpy(), atol=1e-6)
    for mode in ("zero", "mean"):
        got, want = (
            faithfulness(m, {"a": s}, tasks, ks=(1, 3), mode=mode, cache=False, progress=False)
            for m, s in zip((traced, bridged), maps)
        )
        for field in ("clean", "clean_accuracy", "metric", "accuracy", "random_metric", "random_accuracy"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), atol=1e-6, err_msg=f"{mode} {field}")


def test_head_means_equal_the_bridge(traced, bridged, toy_task):
    """The means mode="mean" ablates with, pooled in traces (two batches: their sums kept across requests)."""
    from headlab.analysis.interventions import head_means

    got, want = (head_means(m, pair(toy_task), batch_size=3, progress=False) for m in (traced, bridged))
    assert got.shape == want.shape == (traced.cfg.n_layers, traced.cfg.n_heads, traced.cfg.d_head)
    assert float(np.abs(want).max()) > 1e-2  # not a vacuous zero
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_map_names_its_engine_in_its_card_and_file(traced, toy_task, tmp_path):
    from headlab.results import HeadScores

    s = score(traced, toy_task, method="ablation", ablation="zero", cache=False, progress=False)
    assert s.model.card().endswith("engine   nnsight")
    assert HeadScores.load(s.save(tmp_path / "m.npz")).model.engine == "nnsight"


def test_importing_headlab_does_not_import_nnsight():
    import subprocess

    code = "import headlab, headlab.scoring, headlab.models, sys; print('nnsight' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cli_takes_the_engine(tmp_path, monkeypatch, capsys):
    from headlab import cli
    from headlab.results import HeadScores

    out = tmp_path / "out"
    argv = ["score", "--engine", "nnsight", "--tasks", "Math Calculation", "--items", "2", "--out", str(out)]
    assert cli.main([*argv, "--quiet"]) == 0
    saved = HeadScores.load(out / "scores.npz")
    assert saved.model.engine == "nnsight" and saved.model.name == "smollm2-135m"
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    from nnsight import CONFIG

    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    capsys.readouterr()
    assert cli.main(["score", "--engine", "ndif", "--out", str(tmp_path / "other"), "--quiet"]) == 2
    assert "headlab: engine='ndif' needs an NDIF API key" in capsys.readouterr().err
    assert cli.main(["score", "--engine", "nnsight", "--method", "gating", "--out", str(tmp_path / "o3")]) == 2
    assert "headlab: method 'gating' does not run on the nnsight engine" in capsys.readouterr().err


def test_head_details_on_the_engine_are_the_maps_without_a_pattern(traced, toy_task):
    """The explorer's head details of a model of the nnsight engine: the score and rank of its map, and a line in
    place of the attention pattern (its sdpa kernel gives none); nothing is run."""
    from headlab.viz.explorer import explorer
    from headlab.viz.explorer.details import NO_PATTERN

    s = score(traced, toy_task, method="attribution", cache=False, progress=False)
    ex = explorer({"tiny": traced}, tasks=[toy_task], scores=s)
    layer, head = np.unravel_index(int(np.argmax(s.values[0])), s.values[0].shape)
    info = ex.details(toy_task.name, int(layer), int(head))
    assert info.value == pytest.approx(float(s.values[0, layer, head])) and info.rank == 1
    assert info.pattern is None and info.figure is None and info.summary().endswith(NO_PATTERN)
    assert len(ex.details_out.outputs) == 1 and NO_PATTERN in ex.details_out.outputs[0]["data"]["text/plain"]
