import numpy as np
import pytest
import torch
from bad_inputs import GOOD, Catalogue

import headlab.scorers.ablation as ablation_scorer
import headlab.scorers.attribution as attribution
from headlab.engine.forward import gather_positions
from headlab.metrics import encode, from_logits
from headlab.models import ModelLoadError
from headlab.results import HeadScores
from headlab.scoring import score
from headlab.tasks import Task, TaskError
from headlab.testing import planted
from headlab.testing.reference import transformerlens_patching


@pytest.mark.parametrize("metric", ["logit_diff", "logprob"])
def test_resample_ablation_equals_transformerlens_patching(tiny_model, toy_task, metric):
    ours = score(
        tiny_model, toy_task, method="ablation", ablation="resample", metric=metric, cache=False, progress=False
    )
    ref = transformerlens_patching(tiny_model, toy_task, metric)
    assert np.abs(ref).max() > 1e-3  # the comparison is not vacuous
    np.testing.assert_allclose(ours.values[0], ref, atol=1e-4)


def test_batching_does_not_change_exact_scores(tiny_model, toy_task):
    a = score(tiny_model, toy_task, method="ablation", ablation="mean", cache=False, progress=False)
    b = score(tiny_model, toy_task, method="ablation", ablation="mean", batch_size=2, cache=False, progress=False)
    np.testing.assert_allclose(a.per_example, b.per_example, atol=1e-5)


def test_zero_ablation_by_hand(tiny_model, toy_task):
    s = score(tiny_model, toy_task, method="ablation", ablation="zero", metric="logprob", cache=False, progress=False)
    enc = encode(toy_task, tiny_model.tokenizer, "logprob")

    def zero_head(z, hook):
        z[:, :, 3] = 0
        return z

    with torch.no_grad():
        clean = from_logits(gather_positions(tiny_model(enc.tokens), enc.read_pos), enc)
        ablated = from_logits(
            gather_positions(
                tiny_model.run_with_hooks(enc.tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_head)]), enc.read_pos
            ),
            enc,
        )
    np.testing.assert_allclose(s.per_example[0, :, 1, 3], (clean - ablated).numpy(), atol=1e-4)
    np.testing.assert_allclose(s.baseline[0], clean.mean().item(), atol=1e-5)


def test_attribution_zero_is_the_head_mask_gradient(tiny_model, toy_task):
    """Michel et al.: d metric / d mask_h at mask = 1, with z_h scaled by mask_h."""
    s = score(tiny_model, toy_task, method="attribution", ablation="zero", cache=False, progress=False)
    enc = encode(toy_task, tiny_model.tokenizer, "logit_diff")
    L, H = s.model.n_layers, s.model.n_heads
    mask = torch.ones(L, H, requires_grad=True)

    def scale(layer):
        return lambda z, hook: z * mask[layer][None, None, :, None]

    logits = tiny_model.run_with_hooks(enc.tokens, fwd_hooks=[(f"blocks.{l}.attn.hook_z", scale(l)) for l in range(L)])
    from_logits(gather_positions(logits, enc.read_pos), enc).mean().backward()
    np.testing.assert_allclose(s.values[0], mask.grad.numpy(), atol=1e-5)


def test_attribution_tracks_exact_ablation(tiny_model, toy_task):
    from scipy.stats import spearmanr

    exact = score(tiny_model, toy_task, method="ablation", ablation="resample", cache=False, progress=False)
    attr = score(tiny_model, toy_task, method="attribution", ablation="resample", cache=False, progress=False)
    assert spearmanr(exact.values.ravel(), attr.values.ravel()).statistic > 0.6


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_pooled_attribution_equals_one_task_at_a_time(tiny_model, toy_task, ablation):
    """Attribution pools every task's items into length-sorted batches: the numbers must not notice."""
    long = Task.from_records(
        "long",
        [
            dict(
                prompt="Once upon a time, " + i.prompt,
                answer=i.answer,
                counterfactual="Once upon a time, " + i.counterfactual,
                counterfactual_answer=i.counterfactual_answer,
            )
            for i in toy_task.items
        ],
    )
    both = score(tiny_model, [toy_task, long], method="attribution", ablation=ablation, cache=False, progress=False)
    assert np.abs(both.values).max() > 1e-3
    for t, task in enumerate([toy_task, long]):
        alone = score(
            tiny_model, task, method="attribution", ablation=ablation, batch_size=1, cache=False, progress=False
        )
        np.testing.assert_allclose(both.per_example[t, : alone.n_examples[0]], alone.per_example[0], atol=1e-5)
        np.testing.assert_allclose(both.baseline[t], alone.baseline[0], atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*no counterfactuals")
@pytest.mark.filterwarnings("ignore:.*identical to their prompt")  # "ee", "zz": zero/mean keep them, resample skips
@pytest.mark.parametrize("metric", ["logit_diff", "logprob"])
@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_packed_attribution_equals_padded(tiny_llama, toy_task, ablation, metric, monkeypatch):
    """Packed rows, resampled items' gradient-free prefixes and counterfactual suffixes on the clean
    keys/values (``headlab.engine.packing``) give the numbers of right-padded full runs: tasks of different lengths,
    counterfactuals differing early, late and never, and (logprob) a task without counterfactuals, mean-ablated,
    in the same rows as resampled ones."""
    from headlab.engine import packing

    early = Task.from_records(
        "early",
        [
            dict(
                prompt=f"{a} then the rest of it:",
                answer=" ok",
                counterfactual=f"{b} then the rest of it:",
                counterfactual_answer=" no",
            )
            for a, b in ["ab", "cd", "ee", "gh", "zz"]
        ],
    )
    plain = Task.from_records("plain", [dict(prompt="just a prompt", answer=" yes"), dict(prompt="x", answer=" no")])
    tasks = [toy_task, early, plain]
    packed = score(
        tiny_llama, tasks, method="attribution", ablation=ablation, metric=metric, cache=False, progress=False
    )
    monkeypatch.setattr(packing, "supported", lambda *a, **k: False)
    padded = score(
        tiny_llama, tasks, method="attribution", ablation=ablation, metric=metric, cache=False, progress=False
    )
    assert np.nanmax(np.abs(padded.per_example), axis=(1, 2, 3)).min() > 1e-4  # every task scores heads
    np.testing.assert_allclose(packed.per_example, padded.per_example, atol=1e-5)
    np.testing.assert_allclose(packed.baseline, padded.baseline, atol=1e-5)


def test_packed_batches_cut_rows_at_the_token_budget(monkeypatch):
    from headlab.engine.packing import Pack
    from headlab.metrics import Encoded

    lengths = torch.tensor([30, 5, 12, 30, 7, 400, 25])
    enc = Encoded(
        "t",
        "logprob",
        torch.zeros(7, 400, dtype=torch.long),
        None,
        lengths,
        torch.ones(7, dtype=bool),
        torch.zeros(7, 1, dtype=torch.long),
        torch.ones(7, 1, dtype=bool),
        torch.zeros(7, 1, dtype=torch.long),
        torch.zeros(7, 1, dtype=torch.long),
    )
    batches, width = attribution.packed_batches(enc, None)  # rows of 400: [400], [30, 30, 25, 12, 7, 5]
    assert width == 400 and [sorted(lengths[b].tolist()) for b in batches] == [[5, 7, 12, 25, 30, 30, 400]]
    batches, _ = attribution.packed_batches(enc, 1)
    assert [sorted(lengths[b].tolist()) for b in batches] == [[400], [5, 7, 12, 25, 30, 30]]
    monkeypatch.setattr(attribution, "PACKED_TOKEN_BUDGET", 100)  # rows of 30: 30 | 30 | 25 + 5 | 12 + 7
    batches, width = attribution.packed_batches(enc.subset(torch.tensor([0, 1, 2, 3, 4, 6])), None)
    assert width == 30 and [len(b) for b in batches] == [4, 2]
    for b in batches:
        assert Pack(torch.zeros(len(b), dtype=torch.long), lengths[[0, 1, 2, 3, 4, 6]][b], width).n_rows <= 3


def test_pooled_batches_keep_the_token_budget():
    from headlab.metrics import Encoded

    lengths = torch.tensor([30, 5, 12, 30, 7, 400])
    enc = Encoded(
        "t",
        "logprob",
        torch.zeros(6, 400, dtype=torch.long),
        None,
        lengths,
        torch.ones(6, dtype=bool),
        *[torch.zeros(6, 1, dtype=torch.long)] * 1,
        torch.ones(6, 1, dtype=bool),
        torch.zeros(6, 1, dtype=torch.long),
        torch.zeros(6, 1, dtype=torch.long),
    )
    batches = attribution.pooled_batches(enc, None)
    assert sorted(torch.cat(batches).tolist()) == list(range(6))
    for b in batches:
        assert len(b) == 1 or len(b) * int(lengths[b].max()) <= attribution.PADDED_TOKEN_BUDGET
    assert [lengths[b].tolist() for b in batches] == [[5, 7, 12, 30, 30], [400]]
    assert [len(b) for b in attribution.pooled_batches(enc, 4)] == [4, 2]


PLANTS = [(0, 1), (2, 3)]


@pytest.mark.parametrize("method", ["ablation", "attribution"])
@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_planted_heads_ground_truth(toy_task, method, ablation):
    model = planted(PLANTS, n_layers=3, n_heads=4, n_kv_heads=2, seed=3)
    s = score(model, toy_task, method=method, ablation=ablation, metric="logprob", cache=False, progress=False)
    v = np.abs(s.values[0])
    others = np.ones_like(v, dtype=bool)
    for l, h in PLANTS:
        others[l, h] = False
    assert v[others].max() == 0.0  # no other head can move the output: exactly 0
    assert all(v[l, h] > 1e-4 for l, h in PLANTS)
    ranked = {(l, h) for l, h, _ in [(i // 4, i % 4, 0) for i in np.argsort(-v, axis=None)[:2]]}
    assert ranked == set(PLANTS)


def test_headscores_api_and_round_trip(tiny_model, toy_task, tmp_path):
    s = score(
        tiny_model,
        [toy_task, Task.from_records("Other", [{"prompt": "abc", "answer": " d"}, {"prompt": "xyzw", "answer": " q"}])],
        method="attribution",
        ablation="mean",
        metric="logprob",
        cache=False,
        progress=False,
    )
    assert s.values.shape == (2, 3, 4) and s.tasks == ["Toy", "Other"]
    assert s.per_example.shape == (2, 6, 3, 4) and np.isnan(s.per_example[1, 2:]).all()
    assert s.n_examples.tolist() == [6, 2]
    np.testing.assert_allclose(s["Toy"], np.nanmean(s.per_example[0], 0), atol=1e-6)
    frac = s.normalized("fraction")
    np.testing.assert_allclose(frac.sum((1, 2)), 1.0)
    assert np.abs(s.normalized("max")).max() == pytest.approx(1.0)
    np.testing.assert_allclose(s.normalized("zscore")[0].std(), 1.0, atol=1e-6)
    top = s.top("Toy", 3)
    assert top[0][2] == s["Toy"].max() and top[0][2] >= top[1][2] >= top[2][2]
    assert s.rank("Toy")[top[0][0], top[0][1]] == 1
    df = s.to_dataframe()
    assert len(df) == 24 and set(df.columns) >= {"task", "layer", "head", "value", "fraction", "rank"}
    xa = s.to_xarray()
    assert xa.dims == ("task", "layer", "head") and float(xa.sel(task="Toy", layer=1, head=2)) == s["Toy"][1, 2]
    back = HeadScores.load(s.save(tmp_path / "s.npz"))
    for field in ("values", "n_examples", "baseline"):
        np.testing.assert_array_equal(getattr(back, field), getattr(s, field))
    np.testing.assert_array_equal(back.per_example, s.per_example)
    assert (back.tasks, back.model, back.method, back.params) == (s.tasks, s.model, s.method, s.params)
    with pytest.raises(KeyError, match="no task 'Nope'"):
        s["Nope"]
    with pytest.raises(ValueError, match="unknown normalization"):
        s.normalized("softmax")


def test_fallbacks_without_counterfactuals(tiny_model):
    task = Task.from_records("Plain", [{"prompt": "abc", "answer": " d"}, {"prompt": "xyz", "answer": " w"}])
    with pytest.warns(UserWarning, match="resample → mean ablation"):
        s = score(tiny_model, task, method="ablation", ablation="resample", cache=False, progress=False)
    assert s.params["per_task"]["Plain"] == {"ablation": "mean", "metric": "logprob"}
    assert any("logit_diff → logprob" in n for n in s.notes)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "magic"}, "unknown method"),
        ({"ablation": "noise"}, "unknown ablation"),
        ({"metric": "loss"}, "unknown metric"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_arguments(tiny_model, toy_task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        score(tiny_model, toy_task, cache=False, progress=False, **kwargs)


def test_cache_hit_skips_computation(tiny_model, toy_task, tmp_path, monkeypatch):
    first = score(tiny_model, toy_task, method="ablation", ablation="zero", cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 1 and not list(tmp_path.glob("*.partial.npz"))
    monkeypatch.setattr(ablation_scorer, "ablate", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    again = score(tiny_model, toy_task, method="ablation", ablation="zero", cache=tmp_path, progress=False)
    np.testing.assert_array_equal(first.values, again.values)
    changed = Task.from_records("Toy", [{"prompt": "new", "answer": " item"}])
    with pytest.raises(pytest.fail.Exception):
        score(tiny_model, changed, method="ablation", ablation="zero", cache=tmp_path, progress=False)


def test_interrupted_sweep_resumes_identically(tiny_model, toy_task, tmp_path, monkeypatch):
    reference = score(tiny_model, toy_task, method="ablation", ablation="resample", cache=False, progress=False)
    real = ablation_scorer.ablate_heads_hook
    calls = {"n": 0}
    monkeypatch.setattr(ablation_scorer, "JOIN_TOKENS", 1)  # one layer per pass: saved layer by layer

    def interrupt_in_layer_2(*args):
        calls["n"] += 1
        if calls["n"] == 3:  # layers 0 and 1 finished (one pass each), then the user hits stop
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(ablation_scorer, "ablate_heads_hook", interrupt_in_layer_2)
    with pytest.raises(KeyboardInterrupt):
        score(tiny_model, toy_task, method="ablation", ablation="resample", cache=tmp_path, progress=False)
    partial = list(tmp_path.glob("*.partial.npz"))
    assert len(partial) == 1
    with np.load(partial[0]) as f:
        assert f["done"].tolist() == [True, True, False]
    monkeypatch.setattr(
        ablation_scorer,
        "ablate_heads_hook",
        lambda *a: (calls.__setitem__("resumed", calls.get("resumed", 0) + 1), real(*a))[1],
    )
    resumed = score(tiny_model, toy_task, method="ablation", ablation="resample", cache=tmp_path, progress=False)
    assert calls["resumed"] == 1  # only layer 2 was recomputed
    np.testing.assert_array_equal(resumed.per_example, reference.per_example)
    assert not list(tmp_path.glob("*.partial.npz"))


def test_interrupted_verified_run_keeps_its_finished_task_and_resumes_the_next(
    tiny_model, toy_task, tmp_path, monkeypatch
):
    """Stopped in the second task's exact re-runs, ``method="verified"`` has cached the first task and saved the
    second's finished layers; run again, it screens only the second task, re-runs only its unfinished layers, and
    gives the uninterrupted map."""
    import headlab.cache as cache
    import headlab.scorers.verified as verified_scorer

    records = [
        {"prompt": i.prompt + " now", "answer": i.answer, "counterfactual": i.counterfactual + " now",
         "counterfactual_answer": i.counterfactual_answer}
        for i in toy_task.items
    ]  # fmt: skip
    tasks = [toy_task, Task.from_records("Other", records)]
    kw = dict(method="verified", candidates=8, ablation="resample", progress=False)
    monkeypatch.setattr(ablation_scorer, "JOIN_TOKENS", 1)  # one layer per pass: saved layer by layer
    real_hook, calls = ablation_scorer.ablate_heads_hook, {"passes": 0}

    def counted(*args):
        calls["passes"] += 1
        return real_hook(*args)

    monkeypatch.setattr(ablation_scorer, "ablate_heads_hook", counted)
    reference = score(tiny_model, tasks, cache=False, **kw)
    calls["passes"] = 0
    score(tiny_model, tasks[1], cache=False, **kw)
    other_passes = calls["passes"]  # the second task's exact re-runs, uninterrupted

    real_save, saved = cache.save_partial, []

    def save_then_stop(path, *args):
        real_save(path, *args)
        saved.append(path)
        if len(set(saved)) == 2:  # the second task's first finished layer is on disk; the user hits stop
            raise KeyboardInterrupt

    monkeypatch.setattr(cache, "save_partial", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        score(tiny_model, tasks, cache=tmp_path, **kw)
    results = [f for f in tmp_path.glob("*.npz") if ".partial." not in f.name]
    assert len(results) == 1 and len(list(tmp_path.glob("*.partial.npz"))) == 1  # task 1 done, task 2 partial

    monkeypatch.setattr(cache, "save_partial", real_save)
    real_screens, screened = verified_scorer.attribute_screens, []

    def recorded(model, encoded, *args):
        screened.extend(enc.task for enc, _ in encoded)
        return real_screens(model, encoded, *args)

    monkeypatch.setattr(verified_scorer, "attribute_screens", recorded)
    calls["passes"] = 0
    resumed = score(tiny_model, tasks, cache=tmp_path, **kw)
    assert screened == ["Other"] and 0 < calls["passes"] < other_passes
    np.testing.assert_array_equal(resumed.verified, reference.verified)
    np.testing.assert_array_equal(resumed.values, reference.values)
    assert not list(tmp_path.glob("*.partial.npz"))


def test_estimate_counts_only_uncached_tasks_and_scales_with_the_work(tiny_model, toy_task, tmp_path):
    from headlab import scoring

    records = [
        {"prompt": i.prompt + " now", "answer": i.answer, "counterfactual": i.counterfactual + " now",
         "counterfactual_answer": i.counterfactual_answer}
        for i in toy_task.items
    ]  # fmt: skip
    other = Task.from_records("Other", records)
    exact = scoring.estimate(tiny_model, [toy_task, other], method="ablation", ablation="zero", cache=tmp_path)
    quick = scoring.estimate(tiny_model, [toy_task, other], method="attribution", ablation="zero", cache=tmp_path)
    assert exact.tasks == quick.tasks == ["Toy", "Other"] and exact.seconds > 0 and quick.seconds > 0
    L, H = tiny_model.cfg.n_layers, tiny_model.cfg.n_heads
    # per token: exact ablation replays H · L(L+1)/2 blocks (+ 2L), attribution 4L
    assert exact.work / quick.work == pytest.approx((2 * L + H * L * (L + 1) / 2) / (4 * L))
    assert exact.seconds / quick.seconds == pytest.approx(exact.work / quick.work)
    score(tiny_model, toy_task, method="ablation", ablation="zero", cache=tmp_path, progress=False)
    after = scoring.estimate(tiny_model, [toy_task, other], method="ablation", ablation="zero", cache=tmp_path)
    assert after.tasks == ["Other"] and 0 < after.work < exact.work


def test_estimate_counts_integrated_gradient_points_and_verified_heads(tiny_model, toy_task):
    """Each point of an m-point attribution is a forward + backward; verified adds its heads' exact re-runs."""
    from headlab import scoring
    from headlab.scorers.verified import VERIFIED_PER_K

    L, H = tiny_model.cfg.n_layers, tiny_model.cfg.n_heads
    work = lambda method, **kw: scoring.estimate(tiny_model, toy_task, method=method, cache=False, **kw).work  # noqa: E731
    one, eight = work("attribution"), work("attribution", steps=8)
    assert eight / one == pytest.approx((2 + 2 * 8) / 4)
    per_token = one / (4 * L)  # items × mean tokens
    enc = encode(toy_task, tiny_model.tokenizer, "logit_diff")
    resample_rerun = enc.n * ablation_scorer.rerun_tokens(tiny_model, enc, "resample")
    assert resample_rerun != pytest.approx(per_token)  # resample's re-runs skip the shared prefix
    for ablation in ("resample", "zero"):
        per_rerun = enc.n * ablation_scorer.rerun_tokens(tiny_model, enc, ablation)  # items × re-run positions
        for k, heads in [(1, 3), (1, None), (2, None)]:
            n_heads = heads or VERIFIED_PER_K[ablation] * k  # the heads the intervals choose, as measured
            expected = one + 2 * L * per_token + n_heads * (L + 1) / 2 * per_rerun
            assert work("verified", k=k, candidates=heads, steps=1, ablation=ablation) == pytest.approx(expected)
    assert VERIFIED_PER_K["zero"] > VERIFIED_PER_K["resample"]  # zero's screen is less sure: more candidates
    assert work("verified", k=1000, steps=1) == pytest.approx(work("ablation") + one)  # every head
    two_screens = work("ablation") + work("attribution", steps=2)  # m = 1's point is m = 2's last
    assert work("verified", k=1000) == pytest.approx(two_screens)  # the default: steps=[1, 2]
    assert H * L < 1000


def test_the_probe_estimate_counts_its_training(tiny_model, toy_task, monkeypatch):
    """A probe's time is mostly its optimiser steps, which the pass-timed rate does not see: ``fit_seconds``
    times a few of them, and the estimate adds it."""
    from headlab import scoring
    from headlab.scorers.base import REGISTRY

    records = [dict(prompt=i.prompt + " too", answer=i.answer) for i in toy_task.items]
    tasks = [toy_task, Task.from_records("Other", records)]
    probe = REGISTRY["probe"]
    for kind in ("logistic", "mlp"):
        assert probe.fit_seconds(tiny_model, 10, 2, {"probe": kind, "folds": 2}) > 0
    passes = scoring.estimate(tiny_model, tasks, method="probe", cache=False, folds=2).seconds
    monkeypatch.setattr(type(probe), "fit_seconds", lambda self, *a: 1000.0)
    assert scoring.estimate(tiny_model, tasks, method="probe", cache=False, folds=2).seconds > 1000.0 > passes


# --- bad inputs (the cases' machinery: tests/unit/bad_inputs.py) -----------------------------------------------

CASES = Catalogue("api:score")
bad, safe = CASES.bad, CASES.safe

kw = dict(cache=False, progress=False)
bad("tasks an int", lambda c: score(c.model, 42, **kw), TaskError, "not int")
bad("tasks a name", lambda c: score(c.model, "Retrieval", **kw), TaskError, r"builtin\('Retrieval'\)")
bad("tasks a list of dicts", lambda c: score(c.model, [GOOD], **kw), TaskError, "got dict among them")
bad("model an int", lambda c: score(42, c.task, **kw), ModelLoadError, "not int")
bad(
    "unknown method",
    lambda c: score(c.model, c.task, method="magic", **kw),
    ValueError,
    "unknown method 'magic'",
)
bad("method None", lambda c: score(c.model, c.task, method=None, **kw), ValueError, "unknown method None")
bad(
    "unknown ablation",
    lambda c: score(c.model, c.task, ablation="random", **kw),
    ValueError,
    "unknown ablation 'random'",
)
bad(
    "ablation a list",
    lambda c: score(c.model, c.task, ablation=["zero"], **kw),
    ValueError,
    "unknown ablation",
)
bad(
    "unknown metric",
    lambda c: score(c.model, c.task, metric="acc", **kw),
    ValueError,
    "unknown metric 'acc'",
)
for b in (0, -1, 1.5, True, "8"):
    bad(
        f"batch_size {b!r}",
        lambda c, b=b: score(c.model, c.task, batch_size=b, **kw),
        ValueError,
        "batch_size must be a positive int or None",
    )
bad(
    "cache an int",
    lambda c: score(c.model, c.task, cache=5, progress=False),
    TypeError,
    "cache must be True, False",
)
bad(
    "progress a string",
    lambda c: score(c.model, c.task, cache=False, progress="yes"),
    ValueError,
    "progress must be True or False",
)
bad(
    "option for a method without options",
    lambda c: score(c.model, c.task, method="ablation", alpha=1, **kw),
    ValueError,
    r"method 'ablation' takes no options, got \['alpha'\]",
)
bad(
    "unknown attribution option",
    lambda c: score(c.model, c.task, alpha=1, **kw),
    ValueError,
    r"unknown attribution option\(s\) \['alpha'\]: choose from \['path', 'steps'\]",
)
bad(
    "unknown integrated-gradient path",
    lambda c: score(c.model, c.task, steps=2, path="inputs", **kw),
    ValueError,
    r"attribution option path='inputs': choose from \('activations', 'layers'\)",
)
bad(
    "every counterfactual identical",
    lambda c: score(c.model, c.same, **kw),
    ValueError,
    r"'Same': no usable counterfactual \(6 of 6 identical to their prompt",
)
bad(
    "prompt longer than the model's positions",
    lambda c: score(c.hf, c.long_cf, **kw),
    TaskError,
    r"'LongCF': item 0 is 302 tokens .* at most 256 positions",
)
bad(
    "exact ablation too long",
    lambda c: score(c.model, c.long, method="ablation", ablation="zero", **kw),
    TaskError,
    "at most 256 positions",
)
bad(
    "gating too long",
    lambda c: score(c.model, c.long, method="gating", steps=1, seeds=[0], **kw),
    TaskError,
    "at most 256 positions",
)
bad(
    "probe too long",
    lambda c: score(c.model, [c.long, c.plain], method="probe", folds=2, **kw),
    ValueError,
    r"task 'Long': item 0 is 303 tokens",
)
safe(
    "some identical counterfactuals are skipped by resample",
    lambda c: score(c.model, c.some_same, **kw),
    lambda s, c: s.n_examples.tolist() == [4],
    warns="2 of 6 counterfactual prompts are identical",
)
safe(
    "partial counterfactuals: the fallback note counts them",
    lambda c: score(c.model, c.partial, **kw),
    lambda s, c: s.params["per_task"]["Partial"] == {"ablation": "mean", "metric": "logprob"},
    warns=r"Partial: only 1 of 2 items have a counterfactual, metric logit_diff → logprob",
)
safe(
    "a generator of tasks",
    lambda c: score(c.model, (t for t in [c.task]), **kw),
    lambda s, c: s.tasks == ["Toy"],
)
safe(
    "scores record the tasks' items",
    lambda c: c.toy_scores,
    lambda s, c: s.params["task_hashes"] == {"Toy": c.task.content_hash()},
)
for opts, match in [
    ({"folds": 1}, "folds must be ≥ 2"),
    ({"folds": 100}, r"folds=100 needs ≥ 100 items in every task, but 'A' has 2"),
    ({"folds": True}, "folds must be a positive int"),
    ({"lr": 0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"probe": "svm"}, "unknown probe 'svm'"),
    ({"pool": "max"}, "unknown pool 'max'"),
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"depth": 3}, r"unknown probe option\(s\) \['depth'\]"),
]:
    bad(
        f"probe {opts}",
        lambda c, o=opts: score(c.model, [c.alpha, c.beta], method="probe", **o, **kw),
        ValueError,
        match,
    )
bad(
    "probe one task",
    lambda c: score(c.model, c.task, method="probe", **kw),
    ValueError,
    "at least two tasks",
)
for opts, match in [
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"seeds": [1, 1]}, "distinct non-negative ints"),
    ({"steps": 0}, "steps must be a positive int"),
    ({"lr": -1}, "lr must be a positive number"),
    ({"lam": float("nan")}, "lam must be a positive number"),
    ({"noise": -1}, "noise must be a non-negative number"),
    ({"beta": 1}, r"unknown gating option\(s\) \['beta'\]"),
]:
    bad(
        f"gating {opts}",
        lambda c, o=opts: score(c.model, c.task, method="gating", **o, **kw),
        ValueError,
        match,
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case, bad_inputs):
    case.check(bad_inputs)
