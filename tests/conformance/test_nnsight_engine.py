"""Conformance of the nnsight engine: on every architecture it knows (``nnsight_engine.OUT_PROJ``), in float32 and
bfloat16, its attribution and exact-ablation maps equal the plain references (``headlab.testing.reference``: whole
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

from headlab.engine.nnsight_engine import OUT_PROJ
from headlab.models import load_model
from headlab.scoring import score
from headlab.testing import byte_tokenizer
from headlab.testing.architectures import ARCHITECTURES, tiny_arch

from .test_architectures import ATOL, N_LAYERS, TASK, Case, assert_matches, reference

pytestmark = [pytest.mark.conformance, pytest.mark.filterwarnings("ignore:.*differ in token length")]
pytest.importorskip("nnsight")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
IG = ("attribution", "resample", 3)  # integrated gradients, 3 points
CASES = [("attribution", "resample", 1), ("attribution", "zero", 1), ("attribution", "mean", 1), IG]
CASES += [("ablation", "resample", 1)]
CASES_LOW = [("attribution", "resample", 1), IG, ("ablation", "resample", 1)]  # bfloat16: the most pieces


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
            for method, ablation, steps in CASES if dtype == "float32" else CASES_LOW:
                ig = f"-ig{steps}" if steps > 1 else ""
                out.append(
                    pytest.param(
                        variant, dtype, method, ablation, steps, id=f"{variant}-{dtype}-nnsight-{method}-{ablation}{ig}"
                    )
                )
    return out


@pytest.mark.parametrize("variant, dtype, method, ablation, steps", params())
def test_nnsight_engine_equals_the_bridge(variant, dtype, method, ablation, steps):
    bridge, traced = engines(variant, dtype)
    kwargs = dict(
        method=method, ablation=ablation, cache=False, progress=False, **({"steps": steps} if steps > 1 else {})
    )
    want = score(bridge, TASK, **kwargs)
    got = score(traced, TASK, **kwargs)
    assert got.model.engine == "nnsight" and want.model.engine == "bridge"
    assert got.n_examples.tolist() == want.n_examples.tolist()
    label = f"{variant}-{dtype}-nnsight-{method}-{ablation}" + (f"-ig{steps}" if steps > 1 else "")
    assert_matches(got.values[0], reference(variant, dtype, Case(method, ablation, steps=steps)), dtype, label)
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


@pytest.mark.parametrize("variant", list(ARCHITECTURES))
def test_verified_probing_and_masked_runs_equal_the_bridge(variant):
    """float32: screen-then-verify's map and verified heads, the per-head activations probing pools, and the
    faithfulness curves (head sets zero-ablated) equal the bridge engine's."""
    from headlab.analysis.validation import faithfulness
    from headlab.scorers.probe import head_activations

    bridge, traced = engines(variant, "float32")
    kwargs = dict(method="verified", ablation="resample", candidates=4, cache=False, progress=False)
    want, got = score(bridge, TASK, **kwargs), score(traced, TASK, **kwargs)
    scale = max(1.0, float(np.abs(want.values).max()))
    assert float(np.abs(got.per_example - want.per_example).max()) <= ATOL * scale
    assert got.verified.tolist() == want.verified.tolist()
    acts = [head_activations(m, [TASK], progress=False).x for m in (bridge, traced)]
    assert float((acts[1] - acts[0]).abs().max()) <= ATOL * max(1.0, float(acts[0].abs().max()))
    curves = [
        faithfulness(m, s, [TASK], ks=(1, 2), cache=False, progress=False) for m, s in ((bridge, want), (traced, got))
    ]
    for field in ("clean", "metric", "random_metric", "accuracy", "random_accuracy"):
        np.testing.assert_allclose(
            getattr(curves[1], field), getattr(curves[0], field), atol=ATOL * scale, err_msg=field
        )
