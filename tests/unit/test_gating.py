import json
import string

import numpy as np
import pytest
import torch

import headlab.scorers.gating as gating
from headlab.engine.forward import final_resid, unembed_at
from headlab.scorers.gating import DEFAULTS, check_options, gate_fits, taxonomy
from headlab.scoring import score
from headlab.tasks import Task
from headlab.testing import planted

FACILITATING, INTERFERING = (1, 2), (1, 0)
FIT = {"seeds": (0, 1), "steps": 40, "lr": 0.25, "lam": 0.05}
PROMPTS = ["The cat sat on", "A dog ran to", "Blue birds fly", "Seven ships", "Old men walk", "Red fox"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second intra-op thread only adds contention on a shared machine (5x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return planted([FACILITATING, INTERFERING], n_layers=2, n_heads=4, seed=0)


@pytest.fixture(scope="module")
def task(model):
    """Per prompt, the letter that FACILITATING raises and INTERFERING lowers the most (by zero-ablating each):
    a task this random model depends on through those two heads only."""
    tok = model.tokenizer
    letters = [tok.convert_tokens_to_ids(c) for c in string.ascii_lowercase]

    def last_logp(ids, head=None):
        def zero(z, hook):
            z = z.clone()
            z[:, :, head[1]] = 0
            return z

        fwd = [(f"blocks.{head[0]}.attn.hook_z", zero)] if head else []
        with torch.no_grad():
            resid = final_resid(model, ids, fwd)
            return unembed_at(model, resid, torch.tensor([[ids.shape[1] - 1]]))[0, 0].log_softmax(-1)[letters]

    records = []
    for prompt in PROMPTS:
        ids = torch.tensor([tok(prompt).input_ids])
        helps = last_logp(ids, INTERFERING) - last_logp(ids, FACILITATING)  # (full − no F) − (full − no I)
        records.append({"prompt": prompt, "answer": string.ascii_lowercase[int(helps.argmax())]})
    return Task.from_records("Planted", records)


@pytest.fixture(scope="module")
def fits(model, task):
    return gate_fits(model, task, progress=False, **FIT)


def test_planted_heads_get_their_roles(fits):
    roles = fits.taxonomy()
    expected = np.full((2, 4), "irrelevant", dtype=object)
    expected[FACILITATING], expected[INTERFERING] = "facilitating", "interfering"
    assert roles.tolist() == expected.tolist()
    s = fits.score()
    assert s.shape == (2, 2, 4)
    assert (s[:, FACILITATING[0], FACILITATING[1]] > 0.9).all()
    assert (s[:, INTERFERING[0], INTERFERING[1]] < -0.9).all()
    others = np.ones((2, 4), dtype=bool)
    others[FACILITATING] = others[INTERFERING] = False
    assert np.abs(s[:, others]).max() < 0.05  # pushed open in G+, closed in G−: diverging
    assert fits.keep[:, others].min() > 0.99 and fits.remove[:, others].max() < 0.01


def test_heads_without_output_get_no_task_gradient(fits):
    """With lam = 0 a head whose W_O is zero keeps its initial gate exactly."""
    others = np.ones((2, 4), dtype=bool)
    others[FACILITATING] = others[INTERFERING] = False
    for s, seed in enumerate(fits.seeds):
        g0 = DEFAULTS["init"] + DEFAULTS["noise"] * torch.randn((2, 4), generator=torch.Generator().manual_seed(seed))
        np.testing.assert_allclose(fits.free[s][others], torch.sigmoid(g0).numpy()[others], atol=1e-6)
    assert not np.allclose(fits.free[0][others], fits.free[1][others])  # seeds differ by their initial noise


def test_fits_record_losses_and_clean_logprob(fits, task):
    assert fits.nll.shape == (2, 3) and np.isfinite(fits.nll).all()
    assert fits.clean.shape == (len(task),) and (fits.clean < 0).all()
    assert fits.options == check_options(**FIT)


def test_a_seed_is_deterministic_and_independent_of_the_others(model, task, fits):
    alone = gate_fits(model, task, progress=False, **{**FIT, "seeds": [1]})
    for fit in ("free", "keep", "remove"):
        np.testing.assert_array_equal(getattr(alone, fit)[0], getattr(fits, fit)[1])


def test_batch_size_only_splits_the_forward_passes(model, task):
    opts = {**FIT, "seeds": [0], "steps": 5}
    whole = gate_fits(model, task, progress=False, **opts)
    split = gate_fits(model, task, batch_size=4, progress=False, **opts)
    np.testing.assert_allclose(split.score(), whole.score(), atol=1e-4)
    np.testing.assert_allclose(split.clean, whole.clean, atol=1e-5)


def test_score_method_gating(model, task, fits):
    s = score(model, task, method="gating", ablation="zero", metric="logprob", cache=False, progress=False, **FIT)
    assert s.method == "gating" and s.per_example.shape == (1, 2, 2, 4) and s.n_examples.tolist() == [2]
    np.testing.assert_allclose(s.per_example[0], fits.score(), atol=1e-6)
    np.testing.assert_allclose(s.values[0], fits.score().mean(0), atol=1e-6)
    np.testing.assert_allclose(s.baseline[0], fits.clean.mean(), atol=1e-6)
    assert {k: s.params[k] for k in DEFAULTS} == {**DEFAULTS, **FIT, "seeds": [0, 1]}


def test_score_caches_on_the_options(model, task, tmp_path, monkeypatch):
    opts = {"seeds": [0], "steps": 2}
    kwargs = {"method": "gating", "ablation": "zero", "metric": "logprob", "cache": tmp_path, "progress": False}
    first = score(model, task, **kwargs, **opts)
    monkeypatch.setattr(gating, "gate_scores", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    np.testing.assert_array_equal(score(model, task, **kwargs, **opts).values, first.values)
    with pytest.raises(pytest.fail.Exception):
        score(model, task, **kwargs, **{**opts, "lam": 0.1})


@pytest.mark.parametrize(
    "options, match",
    [
        ({"bogus": 1}, r"unknown gating option\(s\) \['bogus'\]: choose from"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": [-1]}, "non-negative ints"),
        ({"steps": 0}, "steps must be a positive int"),
        ({"steps": 2.5}, "steps must be a positive int"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"lam": -0.1}, "lam must be a positive number"),
        ({"init": float("nan")}, "init must be a finite number"),
        ({"noise": -1}, "noise must be a non-negative number"),
        ({"lr": True}, "lr must be a positive number"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        check_options(**options)


def test_bad_options_through_score(model, task):
    with pytest.raises(ValueError, match="unknown gating option"):
        score(model, task, method="gating", cache=False, progress=False, step=10)


def test_check_options_fills_defaults_as_plain_json():
    opts = check_options(seeds=(3, np.int64(4)), lr=1)
    assert opts == {**DEFAULTS, "seeds": [3, 4], "lr": 1.0}
    assert json.loads(json.dumps(opts)) == opts
    assert check_options(seeds=7)["seeds"] == [7]


def test_model_is_left_unchanged(model, task):
    params = list(model.parameters())
    was = params[0].requires_grad
    params[0].requires_grad_(not was)  # a mixed set of flags, all restored
    before_grad = [p.requires_grad for p in params]
    before = [p.detach().clone() for p in params]
    gate_fits(model, task, progress=False, seeds=[0], steps=3)
    assert [p.requires_grad for p in params] == before_grad
    assert all(torch.equal(a, p) for a, p in zip(before, params)) and all(p.grad is None for p in params)
    params[0].requires_grad_(was)


def test_taxonomy_of_gate_arrays():
    keep = np.array([0.9, 0.1, 0.9, 0.2])
    remove = np.array([0.8, 0.05, 0.1, 0.7])
    assert taxonomy(keep, remove).tolist() == ["facilitating", "interfering", "irrelevant", "irrelevant"]
    assert taxonomy(keep, remove, threshold=0.85).tolist() == ["irrelevant", "interfering"] * 2


def test_a_repeated_fit_is_not_recomputed(model, task, tmp_path, monkeypatch):
    opts = {**FIT, "seeds": [3], "steps": 2}
    first = gate_fits(model, task, progress=False, cache=tmp_path, **opts)
    monkeypatch.setattr(gating, "_fit", lambda *a, **k: pytest.fail("fitted twice"))
    again = gate_fits(model, task, progress=False, cache=tmp_path, **opts)
    np.testing.assert_array_equal(again.keep, first.keep)
    with pytest.raises(pytest.fail.Exception):
        gate_fits(model, task, progress=False, cache=False, **opts)  # cache=False: no reuse


def test_fits_are_read_back_from_the_disk_cache(model, task, tmp_path, monkeypatch):
    """gate_fits(cache=...) writes the fits beside the scores; a later session reads them instead of refitting."""
    opts = {**FIT, "seeds": [4], "steps": 2}
    first = gate_fits(model, task, progress=False, cache=tmp_path, **opts)
    (path,) = tmp_path.glob("*.fits.npz")
    monkeypatch.setattr(gating, "_fit", lambda *a, **k: pytest.fail("refitted although the fits are cached"))
    again = gate_fits(model, task, progress=False, cache=tmp_path, **opts)
    assert again is not first and again.seeds == [4] and again.options == first.options
    for name in ("free", "keep", "remove", "nll", "clean"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert (again.taxonomy() == first.taxonomy()).all()
    with pytest.raises(pytest.fail.Exception):  # other options: another key, a new fit
        gate_fits(model, task, progress=False, cache=tmp_path, **{**opts, "lr": 0.2})
    with pytest.raises(pytest.fail.Exception):  # no cache: fitted
        gate_fits(model, task, progress=False, **{**opts, "seeds": [5]})
    path.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable"), pytest.raises(pytest.fail.Exception):
        gate_fits(model, task, progress=False, cache=tmp_path, **opts)  # moved aside, then refitted
    assert path.with_name(path.name + ".unreadable").is_file()


def test_fits_that_score_just_made_are_written_to_the_cache(model, task, tmp_path, monkeypatch):
    opts = {**FIT, "seeds": [6], "steps": 2}
    score(model, task, method="gating", cache=tmp_path, progress=False, **opts)
    assert len(list(tmp_path.glob("*.fits.npz"))) == 1  # beside the scores, keyed like them
    monkeypatch.setattr(gating, "_fit", lambda *a, **k: pytest.fail("refitted what score() just fitted"))
    fits = gate_fits(model, task, progress=False, cache=tmp_path, **opts)
    assert len(list(tmp_path.glob("*.fits.npz"))) == 1 and fits.keep.shape == (1, 2, 4)
