"""The nnsight engine on the embedded model: its maps equal the bridge's, here and through nnsight's own
simulation of a remote (NDIF) run — the request serialized, the local modules hidden, run, the saved values sent
back — ρ = 1 and max |Δ| ≤ 1e-4 (float32), on the same token ids (BOS first, as the bridge's)."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from headlab.metrics import encode
from headlab.models import load_model
from headlab.scoring import score
from headlab.tasks import builtin

pytestmark = pytest.mark.integration
pytest.importorskip("nnsight")

TASKS = ["Knowledge Recall", "Math Calculation"]


@pytest.fixture(scope="module", params=["nnsight", "ndif-simulated"])
def traced(request):
    if request.param == "nnsight":
        return load_model(engine="nnsight")
    return load_model(engine="ndif", simulate=True)


def check_equal(got, want):
    assert got.values.shape == want.values.shape
    assert float(np.abs(got.per_example - want.per_example).max()) <= 1e-4
    for t in range(len(want.tasks)):
        assert spearmanr(got.values[t].ravel(), want.values[t].ravel()).statistic > 0.9999


def test_the_same_token_ids(traced, embedded):
    for task in builtin(TASKS).values():
        a, b = encode(task, traced.tokenizer), encode(task, embedded.tokenizer)
        assert a.tokens.equal(b.tokens) and a.tokens[0, 0] == 1  # BOS, <|im_start|>


@pytest.mark.parametrize("ablation", ["resample", "zero", "mean"])
def test_attribution_equals_the_bridge(traced, embedded, ablation):
    tasks = [t.subset(8) for t in builtin(TASKS).values()]
    kwargs = dict(method="attribution", ablation=ablation, cache=False, progress=False)
    check_equal(score(traced, tasks, **kwargs), score(embedded, tasks, **kwargs))


def test_exact_ablation_equals_the_bridge(traced, embedded):
    tasks = [builtin(["Math Calculation"])["Math Calculation"].subset(2)]
    kwargs = dict(method="ablation", ablation="resample", cache=False, progress=False)
    got, want = score(traced, tasks, **kwargs), score(embedded, tasks, **kwargs)
    check_equal(got, want)
    assert got.model.engine == traced.engine and got.model.fingerprint != want.model.fingerprint
