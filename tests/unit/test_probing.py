"""headlab.scorers.probe on a tiny model whose only class signal is planted in one head's activations."""

import contextlib

import numpy as np
import pytest
import torch

import headlab.scorers.probe as probe
from headlab.engine import hooks
from headlab.scorers.probe import head_activations, stratified_folds
from headlab.scoring import score
from headlab.tasks import Task

SIGNAL = (1, 2)  # the one head whose z carries the answer's tokens
LETTERS = {"Alpha": "abcdef", "Beta": "uvwxyz", "Gamma": "klmnop"}


def _tasks(n=15):
    rng = np.random.default_rng(0)
    out = []
    for name, letters in LETTERS.items():
        records = [
            {
                "prompt": "Item " + "".join(rng.choice(list("0123456789"), 4)) + " says",
                "answer": " " + "".join(rng.choice(list(letters), 3)),
            }
            for _ in range(n)
        ]
        out.append(Task.from_records(name, records))
    return out


@contextlib.contextmanager
def planted_signal(model, seed=0):
    """Every head's z becomes token-independent noise, except SIGNAL's, which becomes the token embedding."""
    L, d = len(model.blocks), model.cfg.d_head
    gen = torch.Generator().manual_seed(seed)
    box = {}

    def grab(x, hook):
        box["embed"] = x.detach()
        return x

    def replace(layer):
        def hook(z, hook):
            noise = torch.randn(z.shape, generator=gen)
            if layer == SIGNAL[0]:
                noise[:, :, SIGNAL[1]] = box["embed"][..., :d] * 3
            return noise

        return hook

    with model.hooks(fwd_hooks=[("embed.hook_out", grab)] + [(hooks.z(l), replace(l)) for l in range(L)]):
        yield


@pytest.fixture(scope="module")
def tasks():
    return _tasks()


def test_activations_pool_over_the_answer_tokens(tiny_model, tasks):
    mean = head_activations(tiny_model, tasks, "mean", progress=False)
    first = head_activations(tiny_model, tasks, "first", progress=False)
    last = head_activations(tiny_model, tasks, "last", progress=False)
    L, H, d = len(tiny_model.blocks), tiny_model.cfg.n_heads, tiny_model.cfg.d_head
    assert mean.x.shape == (45, L, H, d) and mean.classes == list(LETTERS)
    assert mean.y.tolist() == [0] * 15 + [1] * 15 + [2] * 15
    # by hand for item 0: answer " xyz" is 4 byte tokens after the prompt
    item = tasks[0].items[0]
    ids = tiny_model.tokenizer(item.prompt).input_ids
    n_ans = len(tiny_model.tokenizer(item.answer, add_special_tokens=False).input_ids)
    _, cache = tiny_model.run_with_cache(
        torch.tensor([ids + tiny_model.tokenizer(item.answer, add_special_tokens=False).input_ids]),
        names_filter=hooks.z(1),
    )
    z = cache[hooks.z(1)][0, len(ids) :]
    assert z.shape[0] == n_ans
    torch.testing.assert_close(mean.x[0, 1], z.mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(first.x[0, 1], z[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(last.x[0, 1], z[-1], atol=1e-5, rtol=1e-4)


def test_folds_are_stratified_and_seeded():
    y = torch.tensor([0] * 10 + [1] * 7)
    f = stratified_folds(y, 5, seed=3)
    assert all(
        np.bincount(f[y.numpy() == c], minlength=5).max() - np.bincount(f[y.numpy() == c], minlength=5).min() <= 1
        for c in (0, 1)
    )
    np.testing.assert_array_equal(f, stratified_folds(y, 5, seed=3))
    with pytest.raises(ValueError, match="lower folds"):
        stratified_folds(y, 8, seed=0)


@pytest.mark.parametrize("probe", ["mlp", "logistic"])
def test_probe_finds_the_planted_head(tiny_model, tasks, probe):
    with planted_signal(tiny_model):
        s = score(
            tiny_model, tasks, method="probe", probe=probe, folds=3, epochs=40, lr=1e-3, cache=False, progress=False
        )
    assert s.method == "probe" and s.tasks == list(LETTERS) and s.params["probe"] == probe
    assert s.per_example.shape == (3, 15, 3, 4)
    for task in s.tasks:
        assert s.top(task, 1)[0][:2] == SIGNAL, (task, s[task])
    if probe == "mlp":
        assert s.params["accuracy"] > 0.6  # held-out, chance = 1/3
    else:
        assert s.values[:, SIGNAL[0], SIGNAL[1]].min() > 0.8  # Youden J of the planted head
        others = np.delete(s.values.reshape(3, -1), SIGNAL[0] * 4 + SIGNAL[1], axis=1)
        assert np.abs(others).max() < 0.5  # noise heads: near chance


def test_probe_is_deterministic_and_cached(tiny_model, tasks, tmp_path, monkeypatch):
    kw = dict(method="probe", folds=3, epochs=5, progress=False)
    a = score(tiny_model, tasks, cache=tmp_path, **kw)
    assert len(list(tmp_path.glob("*.npz"))) == len(tasks)  # one file per class, keyed on all classes
    b = score(tiny_model, tasks, cache=False, **kw)
    np.testing.assert_array_equal(a.per_example, b.per_example)
    monkeypatch.setattr(probe, "probe_scores", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    c = score(tiny_model, tasks, cache=tmp_path, **kw)  # from disk
    np.testing.assert_array_equal(a.values, c.values)
    assert c.params["accuracy"] == a.params["accuracy"]
    assert c.params["class_accuracy"] == a.params["class_accuracy"]
    with pytest.raises(pytest.fail.Exception):  # another set of classes: every class's result changes
        score(tiny_model, tasks[:2], cache=tmp_path, **kw)


def test_probe_errors_are_one_line(tiny_model, tasks):
    with pytest.raises(ValueError, match="unknown probe option"):
        score(tiny_model, tasks, method="probe", cache=False, progress=False, depth=3)
    with pytest.raises(ValueError, match="at least two tasks"):
        score(tiny_model, tasks[0], method="probe", cache=False, progress=False)
    with pytest.raises(ValueError, match="unknown pool"):
        score(tiny_model, tasks, method="probe", pool="max", cache=False, progress=False)
    unknown = r"unknown attribution option\(s\) \['pool'\]: choose from \['path', 'steps'\]"
    with pytest.raises(ValueError, match=unknown):
        score(tiny_model, tasks, method="attribution", pool="mean", cache=False, progress=False)
