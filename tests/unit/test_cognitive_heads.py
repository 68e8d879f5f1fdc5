"""Head selection, masking (zero / mean / scale), layer-matched validation and steering on tiny models."""

import numpy as np
import pytest
import torch

from headlab.analysis.interventions import head_means, mask_heads, steer
from headlab.analysis.selection import elbow_count, select_heads
from headlab.analysis.steering import directions, steering_sweep
from headlab.analysis.validation import layer_matched_random, validate
from headlab.engine import hooks
from headlab.metrics import encode
from headlab.scoring import score
from headlab.testing import head_scores, planted


def _scores(m):
    m = np.asarray(m, dtype=float)[None]
    return head_scores(m, tasks=["T"], method="ablation", params={})


def test_elbow_is_the_point_farthest_from_the_chord():
    assert elbow_count([10, 9, 1, 0.5, 0]) == 2  # chord y = 10 − 2.5x; |y − chord| = 0, 1.5, 4, 2, 0: elbow at x = 2
    assert elbow_count([5, 0, 0, 0]) == 1
    assert elbow_count([3, 3, 3]) == 1  # flat: only the first
    y = np.r_[np.linspace(1, 0.9, 5), np.linspace(0.2, 0, 20)]
    assert elbow_count(y) == 5


def test_select_heads_rules():
    s = _scores([[0.1, -0.9, 0.0], [0.8, 0.05, 0.02]])
    assert select_heads(s, "T", "top_k", k=2) == [(0, 1), (1, 0)]  # by |score|
    assert select_heads(s, "T", "top_k", k=2, by="value") == [(1, 0), (0, 0)]
    assert select_heads(s, "T", "threshold", threshold=0.5) == [(0, 1), (1, 0)]
    assert select_heads(s, "T", "elbow") == [(0, 1), (1, 0)]
    with pytest.raises(ValueError, match="needs k"):
        select_heads(s, "T", "top_k")
    with pytest.raises(ValueError, match="unknown rule"):
        select_heads(s, "T", "knee")


def test_mask_modes_by_hand(tiny_model, toy_task):
    enc = encode(toy_task, tiny_model.tokenizer, "logprob")
    means = head_means(tiny_model, toy_task)
    L, H, d = len(tiny_model.blocks), tiny_model.cfg.n_heads, tiny_model.cfg.d_head
    assert means.shape == (L, H, d)
    seen = {}

    def grab(z, hook):
        seen["z"] = z.clone()
        return z

    for mode, expect in [
        ("zero", lambda z: 0 * z),
        ("scale", lambda z: 0.5 * z),
        ("mean", lambda z: torch.as_tensor(means[1, 2]).expand_as(z)),
    ]:
        with torch.no_grad():
            _ = tiny_model.run_with_hooks(enc.tokens, fwd_hooks=[(hooks.z(1), grab)])
            clean = seen["z"][:, :, 2].clone()
            with mask_heads(tiny_model, [(1, 2)], mode, eps=0.5, means=means):
                tiny_model.run_with_hooks(enc.tokens, fwd_hooks=[(hooks.z(1), grab)])
        torch.testing.assert_close(seen["z"][:, :, 2], expect(clean), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="needs means"):
        with mask_heads(tiny_model, [(1, 2)], "mean"):
            pass


def test_layer_matched_random_sets():
    rng = np.random.default_rng(0)
    top = [(0, 1), (0, 2), (2, 0)]
    for _ in range(20):
        r = layer_matched_random(top, 3, 4, rng)
        assert len(r) == 3 and not set(r) & set(top) and len(set(r)) == 3
        assert sorted(l for l, _ in r) == [0, 0, 2]
    full = [(0, h) for h in range(4)]  # layer 0 has no other head: borrow from layer 1
    assert sorted(l for l, _ in layer_matched_random(full, 3, 4, rng)) == [1, 1, 1, 1]


def test_validate_on_planted_heads(toy_task):
    model = planted([(1, 2), (2, 0)], n_layers=3, n_heads=4)
    s = score(model, toy_task, method="ablation", ablation="zero", cache=False, progress=False)
    v = validate(model, s, toy_task, k=2, n_random=10, by="abs", progress=False, cross_task=True)
    row = v.table.loc["Toy"]
    assert set(v.heads["Toy"]) == {(1, 2), (2, 0)}
    assert row.drop_random == 0 and row.drop_random_std == 0  # no other head can change the output
    assert abs(row.drop_top) > 1e-3
    np.testing.assert_allclose(v.cross.loc["Toy", "Toy"], row.drop_top, atol=1e-6)
    assert "| Toy | 2 |" in v.markdown()
    with pytest.raises(ValueError, match="at least 10"):
        validate(model, s, toy_task, n_random=3)
    mean = validate(model, s, toy_task, k=2, n_random=10, by="abs", mode="mean", progress=False).table.loc["Toy"]
    assert mean.drop_random == 0 and abs(mean.drop_top) > 1e-3 and mean.drop_top != row.drop_top


def test_steer_adds_alpha_times_direction(tiny_model, toy_task):
    enc = encode(toy_task, tiny_model.tokenizer, "logprob")
    v = np.arange(tiny_model.cfg.d_head, dtype=np.float32) / 10
    seen = {}

    def grab(z, hook):
        seen.setdefault("z", []).append(z.clone())
        return z

    with torch.no_grad():
        tiny_model.run_with_hooks(enc.tokens, fwd_hooks=[(hooks.z(0), grab)])
        with steer(tiny_model, {(0, 1): v}, alpha=2.0):
            tiny_model.run_with_hooks(enc.tokens, fwd_hooks=[(hooks.z(0), grab)])
    a, b = seen["z"]
    torch.testing.assert_close(b[:, :, 1] - a[:, :, 1], 2.0 * torch.as_tensor(v).expand_as(a[:, :, 1]))
    torch.testing.assert_close(b[:, :, 0], a[:, :, 0])


def test_directions_point_from_wrong_to_right():
    acts = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]], [[-1.0, 0.0]], [[-3.0, 0.0]]])
    correct = torch.tensor([True, True, False, False])
    d = directions(acts, correct, [(0, 0)])[(0, 0)]
    sigma = acts[:, 0, 0].std().item()
    np.testing.assert_allclose(d, [sigma, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="right and items it gets wrong"):
        directions(acts, torch.ones(4, dtype=torch.bool), [(0, 0)])


def test_steering_sweep_alpha_zero_is_the_baseline(tiny_model, toy_task):
    s = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    df = steering_sweep(tiny_model, s, toy_task, alphas=(0.0, 3.0), k=2)
    task = df.loc["Toy"]
    if task["note"].iloc[0]:  # a random model may get every item wrong: then nothing is steered
        assert len(task) == 1
    else:
        np.testing.assert_allclose(task.loc[0.0, "accuracy"].iloc[-1], task.loc[0.0, "accuracy"].iloc[0])
