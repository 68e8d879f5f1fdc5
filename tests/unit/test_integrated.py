"""Integrated-gradient attribution (``steps=``), screen-then-verify (``method="verified"``) and faithfulness
curves, on tiny models against plain references."""

import numpy as np
import pytest
import torch

from headlab.analysis import validation
from headlab.analysis.interventions import head_means, mask_heads
from headlab.analysis.selection import select_heads
from headlab.engine.forward import gather_positions
from headlab.errors import InputError
from headlab.metrics import encode, from_logits
from headlab.results import HeadScores
from headlab.scorers import attribution, verified
from headlab.scoring import score
from headlab.testing import reference


def _close(a, b, rel=1e-5):
    scale = max(1e-3, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=rel * scale, rtol=0)


def _zeroed_drop(model, task, layers) -> float:
    """Mean over items of clean metric − metric with every head of ``layers`` zeroed, by one plain forward."""
    enc = encode(task, model.tokenizer, "logit_diff")
    with torch.no_grad():
        clean = from_logits(gather_positions(model(enc.tokens), enc.read_pos), enc)
        hooks = [(f"blocks.{l}.attn.hook_z", lambda z, hook: z * 0) for l in layers]
        zeroed = model.run_with_hooks(enc.tokens, fwd_hooks=hooks)
    return (clean - from_logits(gather_positions(zeroed, enc.read_pos), enc)).mean().item()


@pytest.fixture(scope="module", params=["padded", "packed"])
def model(request, tiny_model, tiny_llama):
    return tiny_model if request.param == "padded" else tiny_llama


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_one_step_is_plain_attribution(model, toy_task, ablation):
    s = score(model, toy_task, method="attribution", ablation=ablation, steps=1, cache=False, progress=False)
    ref = reference.gate_gradient(model, toy_task, ablation)
    assert np.abs(ref).max() > 1e-4 and s.params["steps"] == 1
    _close(s.values[0], ref)


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_integrated_gradients_equal_the_plain_reference(model, toy_task, ablation):
    """The packed and padded fast paths give one full forward + backward per path point's numbers."""
    s = score(model, toy_task, method="attribution", ablation=ablation, steps=3, cache=False, progress=False)
    ref = reference.integrated_gradients(model, toy_task, ablation, steps=3)
    first = reference.gate_gradient(model, toy_task, ablation)
    assert np.abs(ref - first).max() > 10 * 1e-5 * np.abs(ref).max()  # the path changes the numbers
    _close(s.values[0], ref)


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("steps, batch_size", [(2, None), (3, 2)])
def test_the_layer_path_equals_its_plain_reference(model, toy_task, ablation, steps, batch_size):
    """``path="layers"`` on the replay engine (joined copies, shared prefixes; several batches cut from one shared
    run) gives one full forward + backward per layer and point's numbers, and differs from the every-layer path."""
    run = dict(steps=steps, path="layers", batch_size=batch_size, cache=False, progress=False)
    s = score(model, toy_task, method="attribution", ablation=ablation, **run)
    ref = reference.integrated_gradients(model, toy_task, ablation, steps=steps, path="layers")
    every = reference.integrated_gradients(model, toy_task, ablation, steps=steps)
    assert np.abs(ref - every).max() > 10 * 1e-5 * np.abs(ref).max()
    assert s.params["path"] == "layers"
    _close(s.values[0], ref)


def test_the_layer_path_keeps_each_pass_within_its_token_budget(tiny_llama, toy_task, monkeypatch):
    """A pass with gradients keeps every block's activations: a layer's copies of a batch hold at most the budget's
    tokens (batches are cut to fit), and the numbers do not change."""
    from headlab.scorers import layer_path

    enc = encode(toy_task, tiny_llama.tokenizer, "logit_diff")
    budget = 2 * enc.tokens.shape[1] * 3  # two rows of three copies (steps=4)
    monkeypatch.setattr(layer_path.budget, "tokens", lambda *a, **k: budget)
    seen, real = [], layer_path.layer_pass

    def spy(model, r, sub, layers, points, *rest):
        seen.append(len(layers) * len(points) * sub.tokens.shape[0] * sub.tokens.shape[1])
        return real(model, r, sub, layers, points, *rest)

    monkeypatch.setattr(layer_path, "layer_pass", spy)
    s = score(
        tiny_llama, toy_task, method="attribution", ablation="zero", steps=4, path="layers", cache=False, progress=False
    )
    assert len(seen) > 1 and max(seen) <= budget
    _close(s.values[0], reference.integrated_gradients(tiny_llama, toy_task, "zero", steps=4, path="layers"))


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_screens_share_their_path_points_and_equal_separate_runs(model, toy_task, ablation, monkeypatch):
    """``attribute_screens([1, 2, 4])`` runs each distinct point once (4 here, not 7) and gives each screen
    exactly what its own run gives."""
    enc = encode(toy_task, model.tokenizer, "logit_diff")
    if ablation == "resample":
        enc = enc.subset(torch.nonzero(enc.cf_ok).flatten())
    jobs = [(enc, ablation)]
    alone = [attribution.attribute(model, jobs, None, False, steps)[0] for steps in (1, 2, 4)]
    points, interpolate, keep = [], attribution.interpolate_z, attribution.keep_z

    def on_path(zs, live, ablated, alpha):
        points.append(alpha)
        return interpolate(zs, live, ablated, alpha)

    def clean(zs, grad=False):
        points.extend([1.0] if grad else [])
        return keep(zs, grad=grad)

    monkeypatch.setattr(attribution, "interpolate_z", on_path)
    monkeypatch.setattr(attribution, "keep_z", clean)
    together = [screen[0] for screen in attribution.attribute_screens(model, jobs, None, False, [1, 2, 4])]
    assert sorted(points) == [0.25, 0.5, 0.75, 1.0]  # one batch here
    for screen, own in zip(together, alone):
        np.testing.assert_array_equal(screen[0], own[0])
        np.testing.assert_array_equal(screen[1], own[1])
    assert not np.array_equal(together[0][0], together[1][0])


def test_many_steps_integrate_to_the_whole_path(tiny_model, toy_task):
    """Completeness: Σ over heads of the path integral → clean metric − metric with every head zeroed."""
    s = score(tiny_model, toy_task, method="attribution", ablation="zero", steps=64, cache=False, progress=False)
    drop = _zeroed_drop(tiny_model, toy_task, range(s.model.n_layers))
    first = score(tiny_model, toy_task, method="attribution", ablation="zero", cache=False, progress=False)
    assert abs(first.values.sum() - drop) > 0.2 * abs(drop)  # the first-order sum misses it
    assert s.values.sum() == pytest.approx(drop, rel=0.03)


@pytest.mark.parametrize("path", reference.PATHS)
def test_every_reference_path_ends_at_plain_attribution(tiny_model, toy_task, path):
    """α = 1 is the clean run on every path, so one point is the plain gate gradient; two points are not."""
    first = reference.gate_gradient(tiny_model, toy_task, "resample")
    _close(reference.integrated_gradients(tiny_model, toy_task, "resample", steps=1, path=path), first)
    two = reference.integrated_gradients(tiny_model, toy_task, "resample", steps=2, path=path)
    assert np.abs(two - first).max() > 0.01 * np.abs(first).max()


def test_the_layer_path_starts_at_plain_attribution_and_integrates_each_layer(tiny_model, toy_task):
    """``path="layers"`` (one layer interpolated at a time): m = 1 is plain attribution, and with many steps the
    sum over a layer's heads tends to the drop with that whole layer zeroed, layer by layer."""
    L = len(tiny_model.blocks)
    first = reference.gate_gradient(tiny_model, toy_task, "zero")
    _close(reference.integrated_gradients(tiny_model, toy_task, "zero", steps=1, path="layers"), first)
    many = reference.integrated_gradients(tiny_model, toy_task, "zero", steps=32, path="layers")
    every = reference.integrated_gradients(tiny_model, toy_task, "zero", steps=32, path="activations")
    drops = np.array([_zeroed_drop(tiny_model, toy_task, [layer]) for layer in range(L)])
    assert np.abs(first.sum(1) - drops).max() > 0.1 * np.abs(drops).max()  # the first-order sums miss them
    np.testing.assert_allclose(many.sum(1), drops, rtol=0, atol=0.03 * np.abs(drops).max())
    assert np.abs(many - every).max() > 0.05 * np.abs(many).max()  # not the all-layers path


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", None])
def test_steps_is_validated(tiny_model, toy_task, bad):
    with pytest.raises(ValueError, match="steps="):
        score(tiny_model, toy_task, method="attribution", steps=bad, cache=False, progress=False)


@pytest.mark.parametrize("bad", ["inputs", "layer", None])
def test_path_is_validated(tiny_model, toy_task, bad):
    with pytest.raises(ValueError, match=r"path=.*choose from \('activations', 'layers'\)"):
        score(tiny_model, toy_task, method="attribution", steps=2, path=bad, cache=False, progress=False)


def test_the_path_enters_the_cache_key(tiny_model, toy_task, tmp_path):
    run = dict(method="attribution", steps=2, cache=tmp_path, progress=False)
    every, one = (score(tiny_model, toy_task, path=p, **run) for p in ("activations", "layers"))
    assert one.params["path"] == "layers" and not np.allclose(every.values, one.values)
    np.testing.assert_array_equal(score(tiny_model, toy_task, path="layers", **run).values, one.values)


def test_steps_enter_the_cache_key(tiny_model, toy_task, tmp_path):
    one = score(tiny_model, toy_task, method="attribution", steps=1, cache=tmp_path, progress=False)
    two = score(tiny_model, toy_task, method="attribution", steps=2, cache=tmp_path, progress=False)
    assert two.params["steps"] == 2 and not np.allclose(one.values, two.values)
    again = score(tiny_model, toy_task, method="attribution", steps=2, cache=tmp_path, progress=False)
    np.testing.assert_array_equal(again.values, two.values)


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_verified_values_are_exact_ablation_exactly(model, toy_task, ablation):
    v = score(model, toy_task, method="verified", ablation=ablation, candidates=3, steps=1, cache=False, progress=False)
    exact = score(model, toy_task, method="ablation", ablation=ablation, cache=False, progress=False)
    screen = score(model, toy_task, method="attribution", ablation=ablation, cache=False, progress=False)
    mask = v.verified[0]
    assert mask.sum() == 3
    np.testing.assert_array_equal(v.per_example[0][:, mask], exact.per_example[0][:, mask])
    np.testing.assert_array_equal(v.values[0][mask], exact.values[0][mask])
    np.testing.assert_array_equal(v.per_example[0][:, ~mask], screen.per_example[0][:, ~mask])
    assert v.params["n_verified"] == {toy_task.name: int(mask.sum())} and v.params["candidates"] == 3  # the option


def test_two_screens_verify_the_union_of_their_candidates(tiny_model, toy_task):
    """``steps=[1, 2]`` (the default): each screen's candidates are verified with exact values; the rest keep the
    first screen's estimates. A stated ``candidates=K`` verifies exactly K heads, by each head's best rank by
    |score| in either screen."""
    run = dict(ablation="zero", cache=False, progress=False)
    v = score(tiny_model, toy_task, method="verified", k=2, **run)
    exact = score(tiny_model, toy_task, method="ablation", **run)
    screens = [score(tiny_model, toy_task, method="attribution", steps=m, **run).per_example[0] for m in (1, 2)]
    each = [verified.candidates(pe, k=2) for pe in screens]
    assert (each[1] & ~each[0]).any()  # here the second screen adds a head
    mask = v.verified[0]
    np.testing.assert_array_equal(mask, each[0] | each[1])
    np.testing.assert_array_equal(v.per_example[0][:, mask], exact.per_example[0][:, mask])
    np.testing.assert_array_equal(v.per_example[0][:, ~mask], screens[0][:, ~mask])
    assert v.params["steps"] == [1, 2]

    fixed = score(tiny_model, toy_task, method="verified", candidates=2, **run).verified[0]
    firsts = {np.unravel_index(np.abs(pe.mean(0)).argmax(), mask.shape) for pe in screens}
    assert len(firsts) == 2  # here the screens' largest |score| differ: each screen's first is verified
    assert fixed.sum() == 2 and set(zip(*np.nonzero(fixed))) == firsts
    one = score(tiny_model, toy_task, method="verified", steps=[2], candidates=2, **run)
    assert one.params["steps"] == 2 and one.verified[0].sum() == 2


def test_candidates_cover_the_top_k_and_every_interval_reaching_it():
    rng = np.random.default_rng(0)
    pe = rng.normal(size=(8, 3, 4)) * 0.05 + np.linspace(-1, 1.2, 12).reshape(3, 4)  # top 3: 1.2, 1.0, 0.8
    pe[:, 1, 1] = 0.03 + 2.0 * np.array([1, -1] * 4)  # uncertain: its interval reaches the 3rd highest
    chosen = verified.candidates(pe, k=3)
    assert set(zip(*np.nonzero(chosen))) == {
        (2, 3), (2, 2), (2, 1),  # the top 3 (signed, as HeadScores.top)
        (0, 0),  # -1.0: in the top 3 by |score|, in case the screen got its sign wrong
        (1, 1),  # the uncertain head
    }  # fmt: skip
    top5 = verified.top_by_size([pe], 5)  # candidates=5, one screen: the top 5 by |score|
    assert set(zip(*np.nonzero(top5))) == {(2, 3), (2, 2), (0, 0), (2, 1), (0, 1)}  # 1.2, 1.0, -1.0, 0.8, -0.8


def test_disagreements_list_sign_flips_and_rank_moves():
    screen = np.linspace(1, -1, 30).reshape(5, 6)
    exact = screen.copy()
    exact[0, 1] = -2.0  # sign flip, rank 2 → 30
    exact[4, 5] = 3.0  # rank 30 → 1, and a flip
    chosen = np.zeros((5, 6), dtype=bool)
    chosen[0, :3] = chosen[4, 5] = True
    found = verified.disagreements(screen, exact, chosen)
    assert [(d["layer"], d["head"]) for d in found] == [(4, 5), (0, 1)]
    assert found[0]["attribution_rank"] == 30 and found[0]["exact_rank"] == 1
    assert "sign flip" in found[1]["why"] and "rank 2 → 30" in found[1]["why"]


def test_verified_mask_survives_save_load_and_select(tiny_model, toy_task, tmp_path):
    v = score(tiny_model, toy_task, method="verified", k=2, cache=False, progress=False)
    back = HeadScores.load(v.save(tmp_path / "v"))
    np.testing.assert_array_equal(back.verified, v.verified)
    assert back.disagreements().equals(v.disagreements())
    np.testing.assert_array_equal(v.select([toy_task.name]).verified, v.verified)
    plain = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    assert plain.verified is None and HeadScores.load(plain.save(tmp_path / "p")).verified is None
    assert len(plain.disagreements()) == 0


def test_verified_tables_say_which_values_are_exact(tiny_model, toy_task):
    """``top_table``, ``to_dataframe`` and ``to_xarray`` of a verified map carry its mask; other maps' do not."""
    v = score(tiny_model, toy_task, method="verified", k=2, candidates=3, steps=1, cache=False, progress=False)
    mask = v.verified[0]
    assert 0 < mask.sum() < mask.size
    rows = v.top_table(k=mask.size).splitlines()[1:]
    for row, (l, h, _) in zip(rows, v.top(toy_task.name, mask.size)):
        assert row.endswith("  exact" if mask[l, h] else "  estimate")
    frame = v.to_dataframe()
    np.testing.assert_array_equal(frame.verified.to_numpy(), mask.reshape(-1))
    np.testing.assert_array_equal(v.to_xarray().verified.sel(task=toy_task.name).to_numpy(), mask)
    plain = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    assert "exact" not in plain.top_table() and "verified" not in plain.to_dataframe()
    assert "verified" not in plain.to_xarray().coords


def test_verified_options_are_validated(tiny_model, toy_task):
    for bad, name in [
        ({"k": 0}, "k="),
        ({"candidates": 2.5}, "candidates="),
        ({"steps": 0}, "steps="),
        ({"steps": [1, 0]}, "steps="),
        ({"steps": [1, 1]}, "steps="),
        ({"steps": []}, "steps="),
        ({"steps": [1, "2"]}, "steps="),
        ({"x": 1}, "x"),
    ]:
        with pytest.raises(ValueError, match=name):
            score(tiny_model, toy_task, method="verified", cache=False, progress=False, **bad)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_faithfulness_equals_masking_each_set(tiny_model, toy_task, mode):
    attr = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    exact = score(tiny_model, toy_task, method="ablation", cache=False, progress=False)
    f = validation.faithfulness(tiny_model, {"exact": exact, "attr": attr}, [toy_task], ks=(1, 3), mode=mode)
    means = head_means(tiny_model, [toy_task]) if mode == "mean" else None
    assert f.metric.shape == (2, 1, 2) and f.random_metric.shape == (1, 2, 10)
    for m, s in enumerate((exact, attr)):
        for j, k in enumerate((1, 3)):
            with mask_heads(tiny_model, select_heads(s, toy_task.name, "top_k", k=k, by="value"), mode, means=means):
                ((metric, acc),) = validation._behaviours(tiny_model, toy_task, [[]], "zero", None)
            assert f.metric[m, 0, j] == pytest.approx(metric, abs=1e-5) and f.accuracy[m, 0, j] == acc
    assert f.clean[0] == pytest.approx(validation._behaviours(tiny_model, toy_task, [[]], "zero", None)[0][0], abs=1e-5)
    assert np.ptp(f.random_metric[0, 1]) > 0  # the draws differ


def test_faithfulness_is_kept_for_a_second_call(tiny_model, toy_task, monkeypatch):
    attr = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    first = validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), seed=3)
    monkeypatch.setattr(validation, "_masked_behaviour", lambda *a: pytest.fail("recomputed"))
    again = validation.faithfulness(tiny_model, attr, [toy_task], ks=(1, 2), seed=3)
    np.testing.assert_array_equal(first.random_metric, again.random_metric)
    assert len(first.table()) == 2 and "random-k" in first.markdown()
    assert repr(first) == "Faithfulness(maps=['scores'], tasks=1, ks=[1, 2], draws=10, mode='zero')"


def test_validate_returns_one_type_and_points_ks_to_faithfulness(tiny_model, toy_task):
    """``validate`` always returns a ``Validation``; ``ks=`` (the curves) is refused in one line naming
    ``headlab.faithfulness``, which draws them."""
    attr = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    assert isinstance(validation.validate(tiny_model, attr, [toy_task], k=1, progress=False), validation.Validation)
    with pytest.raises(InputError, match=r"call headlab\.faithfulness\(model, maps, tasks, ks=\.\.\.\)$"):
        validation.validate(tiny_model, {"attr": attr}, [toy_task], ks=(1, 3), progress=False)
    curves = validation.faithfulness(tiny_model, {"attr": attr}, [toy_task], ks=(1, 3), draws=12, progress=False)
    assert isinstance(curves, validation.Faithfulness) and curves.random_metric.shape == (1, 2, 12)


@pytest.mark.parametrize(
    "kwargs, match", [({"ks": (1, 7)}, "ks holds 7"), ({"ks": ()}, "ks is empty"), ({"draws": 5}, "draws=5")]
)
def test_faithfulness_options_are_validated(tiny_model, toy_task, kwargs, match):
    attr = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    with pytest.raises(ValueError, match=match):
        validation.faithfulness(tiny_model, attr, [toy_task], **kwargs)
