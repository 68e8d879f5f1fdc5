"""The engine seam (``load_model(engine=)``): what runs where, what is refused in one line, and how the cache,
``HeadScores`` and the analyses treat the nnsight engine's maps. The maps' equality to the bridge's is proven in
``tests/conformance/test_nnsight_engine.py`` (18 architectures × float32, bfloat16) and on the embedded model in
``tests/integration/test_nnsight_engine.py`` (here and through nnsight's simulation of NDIF)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from headlab.analysis.validation import validate
from headlab.models import ModelLoadError, byte_tokenizer, load_model, tiny_hf
from headlab.scoring import score

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


@pytest.mark.parametrize("method", ["verified", "probe", "gating"])
def test_methods_the_engine_does_not_run_are_refused_by_name(traced, toy_task, method):
    with pytest.raises(ValueError, match=rf"method '{method}' does not run on the nnsight engine: use one of "):
        score(traced, toy_task, method=method, cache=False, progress=False)


def test_integrated_gradients_stay_on_the_bridge(traced, toy_task):
    with pytest.raises(ValueError, match=r"the nnsight engine runs plain attribution \(steps=1\)"):
        score(traced, toy_task, method="attribution", steps=2, cache=False, progress=False)


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
        validate(bridged, a, [toy_task], ks=(1,), progress=False)
    with pytest.warns(UserWarning, match="used on purpose"):
        validate(bridged, a, [toy_task], ks=(1,), progress=False, cross_model=True)


def test_analyses_that_need_the_bridge_say_so(traced, toy_task):
    s = score(traced, toy_task, method="attribution", cache=False, progress=False)
    with pytest.raises(
        ValueError, match=r"validate\(\) runs on engine='bridge' only, and this model is on the nnsight"
    ):
        validate(traced, s, [toy_task], ks=(1,), progress=False)


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
    assert cli.main(["score", "--engine", "nnsight", "--method", "probe", "--out", str(tmp_path / "o3")]) == 2
    assert "headlab: method 'probe' does not run on the nnsight engine" in capsys.readouterr().err
