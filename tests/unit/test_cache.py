"""The disk cache cannot lie: what it keys on, how it heals, and that it never costs a result."""

import errno
import warnings

import numpy as np
import pytest
import torch

import headlab.cache as cache
from headlab.analysis.interventions import mask_heads
from headlab.models import load_model
from headlab.results import HeadScores
from headlab.scoring import score
from headlab.testing import byte_tokenizer, tiny_hf

KW = dict(method="ablation", ablation="zero", progress=False)


@pytest.fixture
def model():
    return load_model(tiny_hf(n_layers=2, seed=1), tokenizer=byte_tokenizer())


def files(folder):
    return sorted(p.name for p in folder.glob("*.npz"))


def test_a_masked_model_neither_reads_nor_writes_the_cache(model, toy_task, tmp_path):
    clean = score(model, toy_task, cache=tmp_path, **KW)
    with mask_heads(model, [(0, 1)]), pytest.warns(UserWarning, match="hooks are active"):
        masked = score(model, toy_task, cache=tmp_path, **KW)
    assert np.abs(masked.values - clean.values).max() > 1e-4  # the masked map, computed, not read
    assert masked.values[0, 0, 1] == 0.0  # an ablated head that is already masked changes nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = score(model, toy_task, cache=tmp_path, **KW)
    np.testing.assert_array_equal(again.values, clean.values)  # the masked map was not stored under its key
    assert len(files(tmp_path)) == 1


def test_in_place_weight_edits_change_the_key(model, toy_task, tmp_path):
    before = score(model, toy_task, cache=tmp_path, **KW)
    with torch.no_grad():
        list(model.parameters())[-3].view(-1)[-1] += 1.0  # the last value of a late tensor
    after = score(model, toy_task, cache=tmp_path, **KW)
    assert len(files(tmp_path)) == 2 and np.abs(after.values - before.values).max() > 0
    fresh = score(model, toy_task, cache=False, **KW)
    np.testing.assert_array_equal(after.values, fresh.values)


def test_models_differing_deep_in_a_tensor_do_not_share_results(toy_task):
    a = load_model(tiny_hf(n_layers=2, seed=1), tokenizer=byte_tokenizer())
    b = load_model(tiny_hf(n_layers=2, seed=1), tokenizer=byte_tokenizer())
    assert cache.weights_fingerprint(a) == cache.weights_fingerprint(b)
    with torch.no_grad():
        b.blocks[1].attn.o.original_component.weight.view(-1)[-1] += 1e-3
    assert cache.weights_fingerprint(a) != cache.weights_fingerprint(b)


def test_the_tokenizer_is_part_of_the_key():
    tok = byte_tokenizer()
    other = byte_tokenizer()
    other.add_tokens(["<extra>"])
    assert cache.tokenizer_fingerprint(tok) == cache.tokenizer_fingerprint(byte_tokenizer())
    assert cache.tokenizer_fingerprint(tok) != cache.tokenizer_fingerprint(other)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_an_unreadable_cache_file_is_moved_aside_and_recomputed(model, toy_task, tmp_path, damage):
    first = score(model, toy_task, cache=tmp_path, **KW)
    (path,) = tmp_path.glob("*.npz")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        np.savez(path, per_example=np.zeros((2, 7, 9)), clean=np.zeros(2))  # another shape: not this model's
    with pytest.warns(UserWarning, match=f"{path.name} is unreadable .*moved aside to {path.name}.unreadable"):
        again = score(model, toy_task, cache=tmp_path, **KW)
    np.testing.assert_array_equal(again.values, first.values)
    assert (tmp_path / f"{path.name}.unreadable").is_file()
    np.testing.assert_array_equal(score(model, toy_task, cache=tmp_path, **KW).values, first.values)  # healed


def test_a_corrupt_partial_sweep_restarts_the_sweep(model, toy_task, tmp_path):
    reference = score(model, toy_task, cache=False, **KW)
    key_file = tmp_path / "x"
    score(model, toy_task, cache=key_file, **KW)
    (done,) = key_file.glob("*.npz")
    partial = done.with_name(done.name.replace(".npz", ".partial.npz"))
    done.unlink()
    partial.write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match="partial.npz is unreadable"):
        again = score(model, toy_task, cache=key_file, **KW)
    np.testing.assert_array_equal(again.values, reference.values)


def test_a_partial_sweep_resumes_only_over_the_heads_it_swept(tmp_path):
    """A partial sweep resumes only the same heads: one over other heads (a verified task whose screen came out
    otherwise) is not resumed; one written before partials named their heads swept every head."""
    n, L, H = 3, 2, 4
    per_example, clean, done = np.full((n, L, H), 0.5, np.float32), np.ones(n, np.float32), np.array([True, False])
    heads = np.zeros((L, H), dtype=bool)
    heads[:, :2] = True
    path = tmp_path / "k.partial.npz"
    cache.save_partial(path, per_example, clean, done, heads)
    got = cache.load_partial(path, (n, L, H), heads)
    assert got is not None and np.array_equal(got[0], per_example) and got[2].tolist() == [True, False]
    other = heads.copy()
    other[1, 3] = True
    assert cache.load_partial(path, (n, L, H), other) is None and path.is_file()  # not resumed, not moved aside
    cache.write_or_warn(path, cache.npz_bytes(per_example=per_example, clean=clean, done=done))  # no heads
    assert cache.load_partial(path, (n, L, H), heads) is None
    assert cache.load_partial(path, (n, L, H), np.ones((L, H), dtype=bool)) is not None


def test_a_full_disk_costs_the_cache_not_the_result(model, toy_task, tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "atomic_write_bytes", full)
    monkeypatch.setattr(cache, "_WARNED", set())
    with pytest.warns(UserWarning, match="cannot write to .*No space left on device.*results are returned") as seen:
        s = score(model, toy_task, cache=tmp_path / "scores", **KW)
    assert len([w for w in seen if "cannot write" in str(w.message)]) == 1  # one warning, not one per layer
    np.testing.assert_array_equal(s.values, score(model, toy_task, cache=False, **KW).values)


@pytest.mark.parametrize(
    "value, error, match",
    [
        ("", ValueError, "empty path"),
        (0, TypeError, "cache must be True, False, None or a folder path, got 0"),
        (1.5, TypeError, "got 1.5"),
        (["a"], TypeError, "got \\['a'\\]"),
    ],
)
def test_cache_argument_is_checked_before_any_compute(model, toy_task, value, error, match):
    with pytest.raises(error, match=match):
        score(model, toy_task, cache=value, **KW)


def test_a_file_as_the_cache_folder_is_refused(model, toy_task, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        score(model, toy_task, cache=f, **KW)


def test_save_keeps_the_whole_name_and_never_overwrites_silently(model, toy_task, tmp_path):
    a = score(model, toy_task, cache=False, **KW)
    b = score(model, toy_task, cache=False, method="attribution", ablation="zero", progress=False)
    assert a.save(tmp_path / "run.v1").name == "run.v1.npz"
    assert b.save(tmp_path / "run.v2").name == "run.v2.npz"
    assert HeadScores.load(tmp_path / "run.v1.npz").method == "ablation"
    a.save(tmp_path / "run.v1")  # the same scores again: nothing to lose
    with pytest.raises(FileExistsError, match="run.v1.npz exists and holds other scores: pass overwrite=True"):
        b.save(tmp_path / "run.v1")
    b.save(tmp_path / "run.v1", overwrite=True)
    assert HeadScores.load(tmp_path / "run.v1.npz").method == "attribution"


def test_load_names_the_file_for_bad_files(model, toy_task, tmp_path):
    s = score(model, toy_task, cache=False, **KW)
    path = s.save(tmp_path / "s.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.npz is not a readable headlab scores file"):
        HeadScores.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="foreign.npz is an .npz file but not saved HeadScores"):
        HeadScores.load(tmp_path / "foreign.npz")
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz holds pickled objects"):
        HeadScores.load(tmp_path / "pickled.npz")
    import json

    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "schema": 99}))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match="future.npz was saved with scores schema 99"):
        HeadScores.load(tmp_path / "future.npz")
