"""The memo audit: every memo in the package keeps the disk cache's rules, or holds no map.

The rules (``headlab.cache``): the same key as the disk cache (weights, whole config, tokenizer, the tasks'
ids, every option), no reuse while hooks are active, and no reuse under ``cache=False``. The first test finds
every module-level container and every value kept on a model, and fails on one that is not listed here with
what it holds and the test that holds it to its rules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import headlab.analysis.validation as validation
import headlab.scorers.gating as gating
import headlab.workshop as workshop
from headlab import cache, scoring
from headlab.analysis.interventions import mask_heads
from headlab.engine import forward
from headlab.scoring import score
from headlab.testing import tiny

ROOT = Path(__file__).resolve().parents[2] / "headlab"

# every memo, registry and per-process record in the package: what it holds, and what keeps it honest
MODULE_LEVEL = {
    "headlab.analysis.validation.CURVES": "results: cache.Memo (test_memo_rules, test_faithfulness_*)",
    "headlab.workshop.EVALS": "results: cache.Memo (test_memo_rules, test_workshop_checks_follow_a_weight_edit)",
    "headlab.cache.MEMOS": "the list of every cache.Memo (test_memo_rules runs over it)",
    "headlab.cache._WARNED": "folders already warned about as unwritable: no result",
    "headlab.scorers.base.REGISTRY": "the registered scorers: no result",
    "headlab.engine.progress._local": "the watching thread's progress callback: no result",
    "headlab.scoring._RATES": "timings for estimates, per dtype and device (test_timings_follow_the_dtype)",
    "headlab.scorers.probe._STEP_TIMES": "timings for estimates, per probe and shape: no map",
    "headlab.viz.display.named_cmap": "matplotlib's colour maps by name, read only: no result",
}
ON_MODELS = {
    "_headlab_weights": "the weights' hash, kept until a tensor's version, storage, dtype or device changes",
    "_headlab_logits_ok": "proof of the readout, per dtype and config (test_proofs_follow_the_config_*)",
    "_headlab_{name}": "proofs of the fast paths, per dtype and config (test_proofs_follow_the_config_*)",
    "_headlab_plain_blocks": "the blocks' own modules (shared weights: no values)",
    "_headlab_inner_modules": "a block's submodules (its layout: no values)",
    "_headlab_view": "a figure's GridView (a drawing, not a model's)",
}
CONTAINERS = {"dict", "set", "list", "WeakKeyDictionary", "WeakValueDictionary", "OrderedDict", "defaultdict"}


def module_level_memos() -> set[str]:
    found = set()
    for path in ROOT.rglob("*.py"):
        module = ".".join(("headlab", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any("cache" in ast.unparse(d) for d in node.decorator_list):
                found.add(f"{module}.{node.name}")
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            v = node.value
            call = isinstance(v, ast.Call) and not v.args[1:] and not v.keywords
            name = (getattr(v.func, "id", None) or getattr(v.func, "attr", None)) if isinstance(v, ast.Call) else None
            if (
                (isinstance(v, ast.Dict) and not v.keys)
                or (isinstance(v, (ast.List, ast.Set)) and not v.elts)
                or (call and not v.args and name in CONTAINERS | {"local"})
                or name == "Memo"
            ):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found |= {f"{module}.{t.id}" for t in targets if isinstance(t, ast.Name) and t.id != "__all__"}
    return found


def model_attributes() -> set[str]:
    pattern = re.compile(r"""(?:\.|__dict__(?:\[|\.setdefault\()f?["'])(_headlab_(?:\{name\}|\w+))""")
    return {m for path in ROOT.rglob("*.py") for m in pattern.findall(path.read_text())}


def test_every_memo_in_the_package_is_listed():
    assert module_level_memos() == set(MODULE_LEVEL)
    assert model_attributes() == set(ON_MODELS)
    assert {m.name for m in cache.MEMOS} == {validation.CURVES.name, workshop.EVALS.name}


@pytest.fixture
def model():
    return tiny(n_layers=2, n_heads=4, d_model=32, seed=3)


@pytest.mark.parametrize("memo", cache.MEMOS, ids=lambda m: m.name)
def test_memo_rules(memo, model):
    """Kept for the same key; recomputed after an in-place weight edit, after a config edit, while hooks are
    active (and what was computed then is not kept), and under cache=False."""
    calls = []

    def make():
        calls.append(1)
        return len(calls)

    settings = {"what": "rules test"}
    assert memo.get(model, settings, make) == 1
    assert memo.get(model, settings, make) == 1  # the same key: kept
    assert memo.get(model, {"what": "another option"}, make) == 2
    assert memo.get(model, settings, make, cache=False) == 3  # cache=False: no reuse
    with mask_heads(model, [(0, 1)]):
        assert memo.get(model, settings, make) == 4  # hooks active: computed, not kept
    assert memo.get(model, settings, make) == 1
    with torch.no_grad():
        model.blocks[0].attn.o.original_component.weight[0, 0] += 1.0
    assert memo.get(model, settings, make) == 5  # another weight: another key
    model.cfg.eps *= 2
    assert memo.get(model, settings, make) == 6  # another config: another key
    memo.clear()


def test_faithfulness_follows_weights_hooks_and_cache_false(tiny_model, toy_task, monkeypatch):
    attr = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    runs = []
    plain = validation._task_curves
    monkeypatch.setattr(validation, "_task_curves", lambda *a: runs.append(1) or plain(*a))
    first = validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), progress=False)
    validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), progress=False)
    assert len(runs) == 1
    validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), progress=False, cache=False)
    assert len(runs) == 2
    with mask_heads(tiny_model, [(0, 0), (1, 1)]):
        masked = validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), progress=False)
    assert len(runs) == 3 and masked.clean[0] != pytest.approx(first.clean[0])
    after = validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), progress=False)
    assert len(runs) == 3 and after.clean[0] == first.clean[0]  # the unmasked model gets the unmasked curves


def test_faithfulness_mean_mode_keys_on_the_tasks_its_means_are_of(tiny_model, toy_task, monkeypatch):
    from headlab.tasks import Task

    other = Task.from_records("Other", [{"prompt": f"Say {c}{c}", "answer": f" {c}"} for c in "abcdef"])
    attr = score(tiny_model, [toy_task, other], method="attribution", ablation="mean", cache=False, progress=False)
    runs = []
    plain = validation._task_curves
    monkeypatch.setattr(validation, "_task_curves", lambda *a: runs.append(1) or plain(*a))
    alone = validation.faithfulness(tiny_model, attr, [toy_task], ks=(1,), mode="mean", progress=False)
    both = validation.faithfulness(tiny_model, attr, [toy_task, other], ks=(1,), mode="mean", progress=False)
    assert len(runs) == 3  # Toy's curves again: its means are now over both tasks
    assert alone.metric[0, 0, 0] != pytest.approx(both.metric[0, 0, 0])


def test_faithfulness_refuses_a_map_of_the_model_before_a_weight_edit(toy_task):
    model = tiny(n_layers=3, n_heads=4, d_model=64, seed=5)
    attr = score(model, toy_task, method="attribution", cache=False, progress=False)
    with torch.no_grad():
        model.blocks[1].attn.o.original_component.weight.mul_(2)
    with pytest.raises(ValueError, match="other weights, config or tokenizer"):
        validation.faithfulness(model, attr, [toy_task], ks=(1,), progress=False)


def test_workshop_checks_follow_a_weight_edit(toy_task):
    model = tiny(n_layers=2, n_heads=4, d_model=32, seed=4)
    first = workshop._logit_diff(model, toy_task, (0, 1))
    assert workshop._logit_diff(model, toy_task, (0, 1)) is first  # kept
    before = first.clone()
    with torch.no_grad():
        model.blocks[1].attn.o.original_component.weight.mul_(3)
    after = workshop._logit_diff(model, toy_task, (0, 1))
    assert not torch.allclose(before, after)


GATE = {"seeds": [1], "steps": 2}


def test_gating_fits_follow_weights_hooks_and_cache_false(toy_task, tmp_path, monkeypatch):
    model = tiny(n_layers=2, n_heads=4, d_model=32, seed=6)
    fits = []
    plain = gating._fit
    monkeypatch.setattr(gating, "_fit", lambda *a: fits.append(1) or plain(*a))
    first = gating.gate_fits(model, toy_task, progress=False, cache=tmp_path, **GATE)
    gating.gate_fits(model, toy_task, progress=False, cache=tmp_path, **GATE)
    assert len(fits) == 3  # free, keep, remove: once
    gating.gate_fits(model, toy_task, progress=False, cache=False, **GATE)
    assert len(fits) == 6
    with mask_heads(model, [(0, 0), (1, 2)]):
        masked = gating.gate_fits(model, toy_task, progress=False, cache=tmp_path, **GATE)
    assert len(fits) == 9 and len(list(tmp_path.glob("*.fits.npz"))) == 1  # fitted, not written
    assert not np.allclose(masked.clean, first.clean)
    again = gating.gate_fits(model, toy_task, progress=False, cache=tmp_path, **GATE)
    np.testing.assert_array_equal(again.clean, first.clean)  # the unmasked model: the unmasked fit
    with torch.no_grad():
        model.blocks[0].attn.o.original_component.weight.mul_(2)
    gating.gate_fits(model, toy_task, progress=False, cache=tmp_path, **GATE)
    assert len(fits) == 12


def test_timings_follow_the_dtype(toy_task):
    model = tiny(n_layers=2, n_heads=4, d_model=32, seed=7)
    scoring.throughput(model, toy_task)
    model.to(torch.bfloat16)
    scoring.throughput(model, toy_task)
    assert set(scoring._RATES[model]) == {(torch.float32, torch.device("cpu")), (torch.bfloat16, torch.device("cpu"))}


def test_proofs_follow_the_config_and_are_not_kept_under_hooks():
    model = tiny(n_layers=2, n_heads=4, d_model=32, seed=8)
    proofs = []
    prove = lambda m: proofs.append(1) or True  # noqa: E731
    assert forward.proven_once(model, "test", prove) and forward.proven_once(model, "test", prove)
    assert len(proofs) == 1
    model.cfg.eps *= 2
    forward.proven_once(model, "test", prove)
    assert len(proofs) == 2
    with mask_heads(model, [(0, 0)]):
        forward.proven_once(model, "hooked", prove)
    forward.proven_once(model, "hooked", prove)
    assert len(proofs) == 4
