"""The cache key covers everything a map is a function of: the weights, the whole config, the token ids the
tasks become, and the method's options (issue: "the score cache's key misses what changes a map without
changing a weight").

- Every field of the config of every conformance architecture (and of the native bridge's ``cfg``) either moves
  the key when it changes, or cannot change on a loaded model, or is a placement field proven here not to
  change the map.
- The issue's own examples: the same weights under another ``rms_norm_eps`` or ``hidden_act`` get their own
  map, never the first model's; a tokenizer setting that changes the ids gets its own map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import LlamaConfig, LlamaForCausalLM

from headlab import cache
from headlab.models import PLACEMENT_FIELDS, config_fields, load_model
from headlab.scoring import score
from headlab.tasks import Task
from headlab.testing import byte_tokenizer, tiny
from headlab.testing.architectures import ARCHITECTURES, tiny_arch

# Fields a loaded model's config reports but that no assignment changes: ``to_dict()`` writes the installed
# transformers version (so an upgrade moves every key) and the config class's ``model_type`` (the class is the
# architecture, which ``architectures`` names).
DERIVED = {"transformers_version", "model_type"}


def changed(value) -> list:
    """Other values for a config field, tried in order until the config accepts one."""
    if value is None:
        return [True, 3, "x"]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1]
    if isinstance(value, float):
        return [value * 1.5 + 0.125]
    if isinstance(value, str):
        return [value + "-x"]
    if isinstance(value, (list, tuple)):
        return [[*value, value[0]] if value else [1]]
    if isinstance(value, dict):
        return [{**value, "headlab-test": 1}]
    if isinstance(value, torch.dtype):
        return [torch.float16 if value != torch.float16 else torch.float32]
    return ["other"]


def conformance_model(name: str):
    return tiny() if name == "native" else load_model(tiny_arch(name), tokenizer=byte_tokenizer())


@pytest.mark.parametrize("name", [*ARCHITECTURES, "native"])
def test_every_config_field_moves_the_key(name):
    model = conformance_model(name)
    owners = {"hf": getattr(model.original_model, "config", None), "bridge": model.cfg}
    moved, fixed, refused = [], [], []
    for part, fields in config_fields(model).items():
        for field in fields:
            before, old = cache.model_fingerprint(model), getattr(owners[part], field)
            for new in changed(old):
                try:
                    setattr(owners[part], field, new)
                    break
                except (NotImplementedError, ValueError, TypeError, StrictDataclassFieldValidationError) as err:
                    why = type(err).__name__
            else:
                refused.append((part, field, why))  # the config refuses every value: it cannot change the map
                continue
            (moved if cache.model_fingerprint(model) != before else fixed).append((part, field))
            setattr(owners[part], field, old)
    assert {field for _, field in fixed} <= DERIVED, fixed
    assert len(moved) > 60, len(moved)  # the whole config, both parts (the native bridge has only its cfg)
    assert all(why in ("NotImplementedError", "ValueError") for *_, why in refused), refused
    assert not set(PLACEMENT_FIELDS["hf"]) & set(config_fields(model)["hf"])


@pytest.fixture(scope="module")
def task():
    records = [
        {"prompt": f"The box of {a} is", "answer": f" {a}", "counterfactual": f"The box of {b} is"}
        | {"counterfactual_answer": f" {b}"}
        for a, b in ["xy", "pq", "mn", "rs"]
    ]
    return Task.from_records("Key", records)


def llama(seed: int = 0, **config):
    """A random Llama (2 layers, 4 heads) over the byte tokenizer, ``config`` fields overriding the defaults;
    the same seed gives the same weights."""
    cfg = dict(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    cfg |= dict(num_key_value_heads=2, max_position_embeddings=128) | config
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return load_model(model, tokenizer=byte_tokenizer())


def exact(model, task, cache_):
    return score(model, task, method="ablation", ablation="zero", cache=cache_, progress=False).values


@pytest.mark.parametrize("field, value", [("rms_norm_eps", 0.5), ("hidden_act", "gelu")])
def test_the_same_weights_under_another_config_get_their_own_map(field, value, task, tmp_path):
    first, second = llama(), llama(**{field: value})
    second.original_model.load_state_dict(first.original_model.state_dict())
    assert cache.weights_fingerprint(first) == cache.weights_fingerprint(second)
    exact(first, task, tmp_path)
    from_cache = exact(second, task, tmp_path)
    truth = exact(second, task, False)
    np.testing.assert_array_equal(from_cache, truth)
    assert np.abs(truth - exact(first, task, False)).max() > 1e-4  # the field changes the map
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_a_tokenizer_setting_that_changes_the_ids_changes_the_key(tmp_path):
    special = Task.from_records(
        "Special",
        [
            {"prompt": f"<|eos|> {a} is", "answer": " x", "counterfactual": f"<|eos|> {b} is"}
            | {"counterfactual_answer": " y"}
            for a, b in ["ab", "cd", "ef"]
        ],
    )
    model = llama()
    plain = exact(model, special, tmp_path)
    model.tokenizer.split_special_tokens = True  # "<|eos|>" is now seven byte tokens, not one
    try:
        from_cache = exact(model, special, tmp_path)
        np.testing.assert_array_equal(from_cache, exact(model, special, False))
        assert np.abs(from_cache - plain).max() > 1e-4
    finally:
        model.tokenizer.split_special_tokens = False


def test_placement_fields_leave_the_map_unchanged(task):
    """The fields left out of the key (PLACEMENT_FIELDS) name or place the model: changing each leaves the map
    bit-identical, and the key too."""
    model = llama()
    owners = {"hf": model.original_model.config, "bridge": model.cfg}
    truth, key = exact(model, task, False), cache.task_key(model, task, {})
    for part, fields in PLACEMENT_FIELDS.items():
        for field in fields:
            old = getattr(owners[part], field)
            setattr(owners[part], field, {"device": "cpu:0", "n_devices": 2}.get(field, "elsewhere/another-name"))
            try:
                np.testing.assert_array_equal(exact(model, task, False), truth)
                assert cache.task_key(model, task, {}) == key
            finally:
                setattr(owners[part], field, old)


def test_a_model_in_training_mode_is_refused(task):
    model = llama()
    model.train()
    with pytest.raises(ValueError, match=r"training mode \(dropout on.*call model.eval\(\) first"):
        exact(model, task, False)
    model.eval()
    model.original_model.model.layers[0].train()  # one module is enough for dropout
    with pytest.raises(ValueError, match="training mode"):
        exact(model, task, False)
