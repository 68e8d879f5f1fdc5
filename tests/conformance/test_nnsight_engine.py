"""Conformance of the nnsight engine: on every architecture it knows (``nnsight_engine.OUT_PROJ``), in float32 and
bfloat16, its attribution and exact-ablation maps equal the plain references (``scorers.reference``: whole
forwards of the bridge, the model's own full logits) by the bounds the bridge engine is held to
(``test_architectures.assert_matches``), on the same weights and token ids — the prompts of
``test_architectures`` (longer than the sliding window; counterfactuals that differ early, late, nowhere, or in
length). In float32 they also equal the bridge engine's own maps, item by item: max |nnsight − bridge| ≤
``ATOL`` · max(1, max |bridge|).
"""

import functools

import numpy as np
import pytest
import torch

from headlab.architectures import ARCHITECTURES, tiny_arch
from headlab.engine.nnsight_engine import OUT_PROJ
from headlab.models import byte_tokenizer, load_model
from headlab.scoring import score

from .test_architectures import ATOL, N_LAYERS, TASK, Case, assert_matches, reference

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore:.*differ in token length")]
pytest.importorskip("nnsight")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CASES = [("attribution", "resample"), ("attribution", "zero"), ("attribution", "mean"), ("ablation", "resample")]
CASES_LOW = [("attribution", "resample"), ("ablation", "resample")]  # bfloat16: the parts with the most pieces


@functools.cache
def engines(variant: str, dtype: str):
    """(bridge, nnsight) over two copies of the same weights."""
    build = lambda: tiny_arch(variant, n_layers=N_LAYERS).to(DTYPES[dtype])  # noqa: E731
    bridge = load_model(build(), tokenizer=byte_tokenizer())
    traced = load_model(build(), tokenizer=byte_tokenizer(), engine="nnsight")
    return bridge, traced


def params():
    out = []
    for variant in ARCHITECTURES:
        for dtype in DTYPES:
            for method, ablation in CASES if dtype == "float32" else CASES_LOW:
                out.append(
                    pytest.param(variant, dtype, method, ablation, id=f"{variant}-{dtype}-nnsight-{method}-{ablation}")
                )
    return out


@pytest.mark.parametrize("variant, dtype, method, ablation", params())
def test_nnsight_engine_equals_the_bridge(variant, dtype, method, ablation):
    bridge, traced = engines(variant, dtype)
    kwargs = dict(method=method, ablation=ablation, cache=False, progress=False)
    want = score(bridge, TASK, **kwargs)
    got = score(traced, TASK, **kwargs)
    assert got.model.engine == "nnsight" and want.model.engine == "bridge"
    assert got.n_examples.tolist() == want.n_examples.tolist()
    label = f"{variant}-{dtype}-nnsight-{method}-{ablation}"
    assert_matches(got.values[0], reference(variant, dtype, Case(method, ablation)), dtype, label)
    if dtype == "float32":
        scale = max(1.0, float(np.abs(want.values).max()))
        assert float(np.abs(got.per_example - want.per_example).max()) <= ATOL * scale
        np.testing.assert_allclose(got.baseline, want.baseline, atol=ATOL * scale)


@pytest.mark.parametrize("variant", list(ARCHITECTURES))
def test_the_head_module_of_every_architecture_takes_every_head(variant):
    """``OUT_PROJ`` names, in each architecture, a module whose input is n_heads × d_head wide."""
    model = tiny_arch(variant, n_layers=N_LAYERS)
    cfg = getattr(model.config, "text_config", None) or model.config
    module = model.get_submodule(OUT_PROJ[model.config.model_type].format(l=N_LAYERS - 1))
    width = getattr(module, "in_features", None) or module.weight.shape[0]  # GPT-2's Conv1D is (in, out)
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    assert width == cfg.num_attention_heads * d_head
