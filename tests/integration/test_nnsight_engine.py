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


def check_equal(got, want, relative=False):
    """The map (mean over items) within 1e-4 and ρ = 1; each item's scores within 1e-4, or with ``relative`` within
    1e-4 · max(1, max |item score|): zero ablation's integrated gradients reach 30 on the embedded model, where
    float32 rounds two engines' kernels apart by 5e-6 relative (the map stays within 4e-5)."""
    assert got.values.shape == want.values.shape
    assert float(np.abs(got.values - want.values).max()) <= 1e-4
    scale = max(1.0, float(np.abs(want.per_example).max())) if relative else 1.0
    assert float(np.abs(got.per_example - want.per_example).max()) <= 1e-4 * scale
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


BRIDGE = {}  # the bridge's maps, computed once for both engines


def bridge_score(embedded, tasks, **kwargs):
    key = (tuple((t.name, len(t)) for t in tasks), tuple(sorted(kwargs.items())))
    if key not in BRIDGE:
        BRIDGE[key] = score(embedded, tasks, cache=False, progress=False, **kwargs)
    return BRIDGE[key]


def subsets(names, n):
    return [task.subset(n) for task in builtin(names).values()]


@pytest.mark.parametrize(
    "ablation, steps, task",
    [("resample", 3, "Math Calculation"), ("zero", 2, "Knowledge Recall"), ("mean", 2, "Knowledge Recall")],
)
def test_integrated_gradients_equal_the_bridge(traced, embedded, ablation, steps, task):
    tasks = subsets([task], 4)
    kwargs = dict(method="attribution", ablation=ablation, steps=steps)
    got = score(traced, tasks, cache=False, progress=False, **kwargs)
    check_equal(got, bridge_score(embedded, tasks, **kwargs), relative=ablation == "zero")


def test_verified_equals_the_bridge(traced, embedded):
    tasks = subsets(["Math Calculation"], 3)
    kwargs = dict(method="verified", ablation="resample", candidates=6)
    got, want = score(traced, tasks, cache=False, progress=False, **kwargs), bridge_score(embedded, tasks, **kwargs)
    check_equal(got, want)
    assert got.verified.tolist() == want.verified.tolist() and got.params["n_verified"] == want.params["n_verified"]
    found = [
        [(d["layer"], d["head"], d["why"]) for d in s.params["disagreements"]["Math Calculation"]] for s in (got, want)
    ]
    assert found[0] == found[1]


def test_probing_equals_the_bridge(traced, embedded):
    from headlab.scorers.probe import head_activations

    tasks = subsets(TASKS, 4)
    got, want = (head_activations(m, tasks, progress=False) for m in (traced, embedded))
    assert float((got.x - want.x).abs().max()) <= 1e-4 and got.y.equal(want.y)
    kwargs = dict(method="probe", probe="logistic", folds=2)
    check_equal(score(traced, tasks, cache=False, progress=False, **kwargs), bridge_score(embedded, tasks, **kwargs))


def test_validate_and_faithfulness_equal_the_bridge(traced, embedded):
    from headlab.analysis.validation import faithfulness, validate

    tasks = subsets(["Math Calculation"], 3)
    kwargs = dict(method="attribution", ablation="resample")
    s = bridge_score(embedded, tasks, **kwargs)
    mine = score(traced, tasks, cache=False, progress=False, **kwargs)
    got, want = validate(traced, mine, tasks, k=3, progress=False), validate(embedded, s, tasks, k=3, progress=False)
    np.testing.assert_allclose(got.table.to_numpy(float), want.table.to_numpy(float), atol=1e-4, rtol=1e-4)
    got = faithfulness(traced, mine, tasks, ks=(1, 4), cache=False, progress=False)
    want = faithfulness(embedded, s, tasks, ks=(1, 4), cache=False, progress=False)
    for field in ("clean", "clean_accuracy", "metric", "accuracy", "random_metric", "random_accuracy"):
        np.testing.assert_allclose(getattr(got, field), getattr(want, field), atol=1e-4, err_msg=field)
