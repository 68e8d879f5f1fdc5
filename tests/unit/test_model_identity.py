"""A map is used only on the model it was computed on (issue: "another model's scores are accepted when only
the shape matches"). ``score()`` records the model's fingerprint (weights, whole config, tokenizer); every
analysis that takes a map and a model compares it (``results.check_model``), and ``cross_model=True`` makes a
deliberate use (a fine-tune's map on its base) say so in one line."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from headlab import cache
from headlab.analysis.steering import steering_sweep
from headlab.analysis.validation import faithfulness, validate
from headlab.models import describe
from headlab.results import HeadScores
from headlab.scoring import score
from headlab.testing import head_scores, tiny
from headlab.viz.explorer import explorer
from headlab.workshop import check_ablation

SHAPE = dict(n_layers=3, n_heads=4, d_model=64, n_kv_heads=2)


@pytest.fixture(scope="module")
def first():
    return tiny(**SHAPE, seed=0)


@pytest.fixture(scope="module")
def other():
    return tiny(**SHAPE, seed=1)  # the same shape, other weights and name


@pytest.fixture(scope="module")
def scores(first, toy_task):
    return score(first, toy_task, method="attribution", cache=False, progress=False)


CALLS = {
    "validate(k=)": lambda m, s, t, **kw: validate(m, s, [t], k=2, progress=False, **kw),
    "faithfulness": lambda m, s, t, **kw: faithfulness(m, {"mine": s}, [t], ks=(1,), progress=False, **kw),
    "steering_sweep": lambda m, s, t, **kw: steering_sweep(m, s, [t], alphas=(1.0,), k=2, **kw),
    "explorer": lambda m, s, t, **kw: explorer({"m": m}, tasks=[t], scores=s, **kw),
}


@pytest.mark.parametrize("call", CALLS, ids=list(CALLS))
def test_a_map_of_another_model_of_the_same_shape_is_refused(call, scores, other, toy_task):
    with pytest.raises(ValueError) as info:
        CALLS[call](other, scores, toy_task)
    text = str(info.value)
    assert "'tiny-3x4-d64-s0', the model is 'tiny-3x4-d64-s1'" in text and "cross_model=True" in text, text
    assert "\n" not in text


@pytest.mark.parametrize("call", ["validate(k=)", "faithfulness", "explorer"])
def test_cross_model_says_so_in_one_line_and_runs(call, scores, other, toy_task):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        CALLS[call](other, scores, toy_task, cross_model=True)
    said = [str(w.message) for w in seen if "cross_model=True" in str(w.message)]
    assert len(said) == 1 and "used on purpose" in said[0], said


def test_a_map_of_the_same_model_is_accepted_and_survives_save_and_load(scores, first, toy_task, tmp_path):
    loaded = HeadScores.load(scores.save(tmp_path / "map.npz"))
    assert loaded.model.fingerprint == scores.model.fingerprint == cache.model_fingerprint(first)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no cross-model warning
        validate(first, loaded, [toy_task], k=1, progress=False)


def test_a_weight_edit_or_another_dtype_makes_it_another_model(toy_task):
    model = tiny(**SHAPE, seed=2)
    scores = score(model, toy_task, method="attribution", cache=False, progress=False)
    model.to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"of another 'tiny-3x4-d64-s2' \(.*float32 then, bfloat16 now\)"):
        validate(model, scores, [toy_task], k=1, progress=False)
    model = tiny(**SHAPE, seed=2)  # the same bytes again (a round trip through bfloat16 rounds the rotary table)
    validate(model, scores, [toy_task], k=1, progress=False)
    with torch.no_grad():
        model.blocks[2].attn.o.original_component.weight[0, 0] += 0.5
    with pytest.raises(ValueError, match="other weights, config or tokenizer"):
        validate(model, scores, [toy_task], k=1, progress=False)


def test_the_same_model_under_another_name_is_the_same_model(scores, toy_task):
    moved = tiny(**SHAPE, seed=0)
    moved.headlab_name = "./elsewhere/the-same-checkpoint"
    assert describe(moved).name != scores.model.name
    validate(moved, scores, [toy_task], k=1, progress=False)


def test_a_hand_built_map_is_checked_by_its_name(first, toy_task, scores):
    info = describe(first)  # no fingerprint: checked by name
    hand = head_scores(scores.values, per_example=scores.per_example, tasks=scores.tasks, model=info, params={})
    validate(first, hand, [toy_task], k=1, progress=False)
    renamed = replace(hand, model=replace(info, name="mine"))
    with pytest.raises(ValueError, match="of 'mine', the model is 'tiny-3x4-d64-s0'"):
        validate(first, renamed, [toy_task], k=1, progress=False)


def test_the_workshop_checks_refuse_a_map_of_another_model(scores, other, toy_task):
    with pytest.raises(ValueError, match=r"check_ablation\(\): scores are of 'tiny-3x4-d64-s0'"):
        check_ablation(0.0, 0.0, other, toy_task, scores)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_cross_model_must_be_a_bool(value, scores, first, toy_task):
    with pytest.raises(ValueError, match=f"cross_model must be True or False, got {value!r}"):
        validate(first, scores, [toy_task], k=1, progress=False, cross_model=value)
