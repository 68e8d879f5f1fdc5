"""The engine's fast paths are proven on the model before they run, and fall back to the plain path where not."""

import numpy as np
import pytest
import torch

from headlab.engine import budget, packing, replay
from headlab.engine.forward import UnsupportedModel, check_logits
from headlab.metrics import encode
from headlab.models import load_model
from headlab.scoring import score
from headlab.tasks import Task
from headlab.testing import byte_tokenizer, tiny_hf


@pytest.fixture(scope="module")
def hf_llama():
    return load_model(tiny_hf(n_layers=3), tokenizer=byte_tokenizer())


def pair_task(records: list[tuple[str, str]]) -> Task:
    """A task of (prompt, counterfactual) pairs, answers " yes" / " no"."""
    return Task.from_records(
        "T", [dict(prompt=p, answer=" yes", counterfactual=c, counterfactual_answer=" no") for p, c in records]
    )


@pytest.fixture
def task():
    return pair_task([(f"{a} is the start of it", f"{b} is the start of it") for a, b in ["ab", "cd", "ee"]])


def test_whole_model_rerun_equals_block_rerun(hf_llama, task, monkeypatch):
    """Where blocks cannot be re-run by hand, Replay re-runs the whole model: the same numbers."""
    assert replay.supported(hf_llama)
    fast = score(hf_llama, task, method="ablation", ablation="resample", cache=False, progress=False)
    monkeypatch.setattr(replay, "supported", lambda model: False)
    plain = score(hf_llama, task, method="ablation", ablation="resample", cache=False, progress=False)
    assert np.abs(plain.values).max() > 1e-3
    np.testing.assert_allclose(fast.values, plain.values, atol=1e-5)


def test_plain_blocks_give_the_bridge_numbers(hf_llama, task, monkeypatch):
    """Unhooked re-run blocks run as plain Hugging Face modules (no bridge wrapper or hook point left in
    them, the same weight tensors): the same map as through the bridge."""
    from transformer_lens.hook_points import HookPoint
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    assert replay.plain_supported(hf_llama)
    plain = replay.plain_blocks(hf_llama)
    assert not any(isinstance(m, (GeneralizedComponent, HookPoint)) for b in plain for m in b.modules())
    assert {p.data_ptr() for p in plain[1].parameters()} <= {p.data_ptr() for p in hf_llama.blocks[1].parameters()}
    fast = score(hf_llama, task, method="ablation", ablation="resample", cache=False, progress=False)
    monkeypatch.setattr(replay, "plain_supported", lambda model: False)
    bridged = score(hf_llama, task, method="ablation", ablation="resample", cache=False, progress=False)
    assert np.abs(bridged.values).max() > 1e-3
    np.testing.assert_allclose(fast.values, bridged.values, atol=1e-6)


def test_copies_joining_at_later_layers_equal_their_own_re_runs(hf_llama):
    """read_from(joins=...): copies that join the re-run at layer l give what a re-run from l gives."""
    from headlab.engine import hooks

    tokens = torch.randint(0, 200, (2, 9))
    r = replay.Replay(hf_llama, tokens, torch.tensor([[8], [8]]), keep_z=False)

    def zero_head(head, first):  # copy ``first`` of the stacked batch gets ``head`` zeroed
        def hook(z, hook):
            z.view(-1, 2, *z.shape[1:])[first, :, :, head] = 0.0
            return z

        return hook

    with torch.no_grad():
        alone = [r.read_from(layer, fwd_hooks=[(hooks.z(layer), zero_head(layer, 0))]) for layer in range(3)]
        fwd = [(hooks.z(layer), zero_head(layer, layer)) for layer in range(3)]
        joined = r.read_from(0, fwd_hooks=fwd, joins={0: 1, 1: 1, 2: 1})
    assert joined.shape == (6, 1, hf_llama.cfg.d_model)
    assert (alone[0] - r.clean_read).abs().max() > 1e-3
    torch.testing.assert_close(joined, torch.cat(alone), atol=1e-6, rtol=0)


@pytest.mark.parametrize("ablation", ["resample", "zero", "mean"])
def test_joined_passes_give_the_layer_by_layer_sweep(hf_llama, task, monkeypatch, ablation):
    """Exact ablation shares one pass among several layers' heads (``JOIN_TOKENS``): the same map as one pass per
    layer, with a head subset too (as ``method="verified"`` asks)."""
    from headlab.scorers import ablation as ablation_scorer

    joined = score(hf_llama, task, method="ablation", ablation=ablation, cache=False, progress=False)
    heads = np.zeros((3, hf_llama.cfg.n_heads), dtype=bool)
    heads[[0, 0, 2], [1, 3, 0]] = True
    enc = encode(task, hf_llama.tokenizer, "logit_diff")
    enc = enc.subset(torch.nonzero(enc.cf_ok).flatten()) if ablation == "resample" else enc
    subset = ablation_scorer.ablate(hf_llama, enc, ablation, None, False, heads=heads)
    monkeypatch.setattr(ablation_scorer, "JOIN_TOKENS", 1)
    assert len(ablation_scorer.layer_groups(np.ones((3, 4), bool), np.zeros(3, bool), 10, 100, True)) == 3
    layered = score(hf_llama, task, method="ablation", ablation=ablation, cache=False, progress=False)
    assert np.abs(layered.values).max() > 1e-4
    np.testing.assert_allclose(joined.values, layered.values, atol=1e-7, rtol=0)
    np.testing.assert_allclose(subset.per_example.mean(0)[heads], layered.values[0][heads], atol=1e-7, rtol=0)
    assert np.isnan(subset.per_example[:, ~heads]).all()


@pytest.mark.parametrize("ablation", ["resample", "mean"])
def test_a_batch_runs_only_as_wide_as_its_longest_row(hf_llama, monkeypatch, ablation):
    """Right padding past a batch's longest row is never seen by a real position (causal attention), so each
    batch's runs leave it out (``Encoded.trimmed``): the same map as at the task's full width."""
    from headlab.metrics import Encoded
    from headlab.scorers import ablation as ablation_scorer

    records = [
        ("ab is it", "cd is it"),
        ("at the very start of it all, ab is it", "at the very start of it all, cd is it"),
    ]
    task = pair_task(records)
    lengths = encode(task, hf_llama.tokenizer, "logit_diff").lengths.tolist()
    widths = []

    class Spy(replay.Replay):
        def __init__(self, model, tokens, *args, **kwargs):
            widths.append(tokens.shape[1])
            super().__init__(model, tokens, *args, **kwargs)

    monkeypatch.setattr(ablation_scorer, "Replay", Spy)
    monkeypatch.setattr(ablation_scorer, "rows_supported", lambda model: False)  # each batch runs itself
    # resample: the rows first differ at different positions, one batch each; mean: one row a batch
    run = dict(method="ablation", ablation=ablation, batch_size=None if ablation == "resample" else 1)
    trimmed = score(hf_llama, task, **run, cache=False, progress=False)
    assert sorted(widths) == sorted(lengths)
    monkeypatch.setattr(Encoded, "trimmed", lambda self, at_least=0: self)
    widths.clear()
    padded = score(hf_llama, task, **run, cache=False, progress=False)
    assert widths == [max(lengths)] * 2
    assert np.abs(padded.values).max() > 1e-3
    np.testing.assert_allclose(trimmed.values, padded.values, atol=1e-6, rtol=0)


def test_prefix_batches_share_one_clean_run(hf_llama, monkeypatch):
    """Resample's prefix batches are cut (``Replay.rows``) from one clean and one counterfactual run of the
    task instead of running themselves: the same map as when each batch runs itself."""
    from headlab.scorers import ablation as ablation_scorer

    records = [
        ("ab is it", "cd is it"),
        ("so, ab is it", "so, cd is it"),
        ("at the very start, ab is it", "at the very start, cd is it"),
    ]
    task = pair_task(records)
    assert replay.rows_supported(hf_llama)
    runs = []

    class Spy(replay.Replay):
        def __init__(self, model, tokens, *args, **kwargs):
            runs.append(tokens.shape)
            super().__init__(model, tokens, *args, **kwargs)

    views, cut = [], replay.Replay.rows

    def rows(self, idx, width):
        views.append((len(idx), width))
        return cut(self, idx, width)

    monkeypatch.setattr(ablation_scorer, "Replay", Spy)
    monkeypatch.setattr(replay.Replay, "rows", rows)
    shared = score(hf_llama, task, method="ablation", ablation="resample", cache=False, progress=False)
    lengths = encode(task, hf_llama.tokenizer, "logit_diff").lengths.tolist()
    assert len(runs) == 1 and runs[0][0] == 3
    assert sorted(views) == [(1, n) for n in sorted(lengths)]  # each batch as wide as its longest row
    monkeypatch.setattr(ablation_scorer, "rows_supported", lambda model: False)
    runs.clear()
    alone = score(hf_llama, task, method="ablation", ablation="resample", cache=False, progress=False)
    assert [shape[0] for shape in runs] == [1, 1, 1]
    assert np.abs(alone.values).max() > 1e-3
    np.testing.assert_allclose(shared.values, alone.values, atol=1e-6, rtol=0)


@pytest.mark.parametrize("ablation", ["resample", "zero"])
def test_rerun_tokens_counts_the_positions_the_sweep_reruns(hf_llama, monkeypatch, ablation):
    """``rerun_tokens`` (the estimate's re-run length) is what the exact sweep's re-runs compute per head and
    item: the batch's width, less the prefix resample reuses."""
    from headlab.scorers import ablation as ablation_scorer

    records = [
        ("ab is it", "cd is it"),
        ("so, ab is it", "so, ab is at"),
        ("at the very start of it, ab is it", "at the very start of it, cd is it"),
    ]
    task = pair_task(records)
    enc = encode(task, hf_llama.tokenizer, "logit_diff")
    positions, joined = [], ablation_scorer.joined_pass

    def spy(r, run, source, idx, prefix):
        positions.append(len(run) * len(idx) * (r.T - prefix))
        return joined(r, run, source, idx, prefix)

    monkeypatch.setattr(ablation_scorer, "joined_pass", spy)
    score(hf_llama, task, method="ablation", ablation=ablation, cache=False, progress=False)
    L, H = len(hf_llama.blocks), hf_llama.cfg.n_heads
    expected = ablation_scorer.rerun_tokens(hf_llama, enc, ablation)
    assert sum(positions) / (L * H * enc.n) == pytest.approx(expected)
    mean_length = enc.lengths.float().mean().item()
    assert expected < mean_length if ablation == "resample" else expected == enc.lengths.max().item()


def test_a_hooked_block_runs_through_the_bridge(hf_llama):
    """A hook on a later block (the user's, e.g. ``mask_heads``) is honoured by the re-run."""
    tokens, read = torch.tensor([[5, 6, 7, 8, 9, 10]]), torch.tensor([[5]])

    def zero_head(z, hook):
        z[:, :, 0] = 0.0
        return z

    runs = {}
    for plain in (True, False):
        r = replay.Replay(hf_llama, tokens, read, keep_z=False, full=False, plain=plain)
        with torch.no_grad(), hf_llama.hooks(fwd_hooks=[("blocks.2.attn.hook_z", zero_head)]):
            runs[plain] = r.read_from(0)
    assert not torch.equal(runs[False], r.clean_read)  # the hook changes the run
    torch.testing.assert_close(runs[True], runs[False], rtol=0, atol=1e-6)


def test_a_pytorch_hook_inside_a_block_runs_it_through_the_bridge(hf_llama):
    """Not only hook points: a plain PyTorch forward hook on a module inside a later block is honoured."""
    tokens, read = torch.tensor([[5, 6, 7, 8, 9, 10]]), torch.tensor([[5]])
    handle = hf_llama.blocks[2].mlp.register_forward_hook(lambda module, args, out: out * 0.5)
    try:
        runs = {}
        for plain in (True, False):
            r = replay.Replay(hf_llama, tokens, read, keep_z=False, full=False, plain=plain)
            with torch.no_grad():
                runs[plain] = r.read_from(1)
    finally:
        handle.remove()
    clean = replay.Replay(hf_llama, tokens, read, keep_z=False, full=False, plain=False).clean_read
    assert not torch.allclose(runs[False], clean)  # the hook changes the run
    torch.testing.assert_close(runs[True], runs[False], rtol=0, atol=1e-6)


def test_a_cancel_stops_plain_blocks(hf_llama):
    """The explorer's cancel check is a pre-hook on the bridge's blocks: a plain re-run still asks it."""
    from headlab.engine.progress import Cancelled, watching

    r = replay.Replay(hf_llama, torch.tensor([[5, 6, 7, 8]]), torch.tensor([[3]]), keep_z=False, plain=True)
    assert r.plain
    with torch.no_grad(), watching(lambda *a: None, hf_llama, stop=lambda: True), pytest.raises(Cancelled):
        r.read_from(0)


def test_an_unknown_block_argument_is_not_re_run_by_hand(hf_llama):
    r = replay.Replay(hf_llama, torch.tensor([[1, 2, 3, 4]]), torch.tensor([[3]]), full=False)
    assert r.known_kwargs()
    r.kwargs[1] = {**r.kwargs[1], "novel_argument": torch.zeros(1)}
    assert not r.known_kwargs()


def test_prefix_reuse_needs_every_key_in_the_cache(hf_llama):
    r = replay.Replay(hf_llama, torch.tensor([[1, 2, 3, 4, 5, 6]]), torch.tensor([[5]]), full=False)
    assert r.supports_prefix()
    r.T += 1  # as if the cache kept fewer positions than the prompt has (a sliding-window cache)
    assert not r.supports_prefix()
    # rows cut from such a run must not slice the cache: its positions would be the last ones, not the first
    assert r.rows(torch.tensor([0]), 5).kv is None and not r.rows(torch.tensor([0]), 5).supports_prefix()
    r.T -= 1
    assert r.rows(torch.tensor([0]), 5).supports_prefix()


def test_a_readout_that_differs_from_the_model_is_refused():
    model = load_model(tiny_hf(), tokenizer=byte_tokenizer())
    check_logits(model)
    model.cfg.output_logits_soft_cap = 0.5  # headlab would apply a cap the model does not have
    model._headlab_logits_ok = None
    with pytest.raises(UnsupportedModel, match="differs from the model's own logits"):
        check_logits(model)


def test_packing_refuses_sequences_longer_than_a_sliding_window(hf_llama, monkeypatch):
    assert packing.supported(hf_llama, longest=500)
    monkeypatch.setattr(hf_llama.original_model.config, "sliding_window", 16, raising=False)
    assert packing.window(hf_llama) == 16
    assert packing.supported(hf_llama, longest=16) and not packing.supported(hf_llama, longest=17)


def test_passes_shrink_with_free_memory(hf_llama, monkeypatch):
    assert budget.tokens(hf_llama, "exact") == budget.CAPS["exact"]  # this CPU has room for the measured caps
    per_token = budget.token_bytes(hf_llama, grad=False)
    monkeypatch.setattr(budget, "free_bytes", lambda device: int(1000 * per_token / budget.SHARE))
    assert budget.tokens(hf_llama, "exact") == 1000
    assert budget.tokens(hf_llama, "packed") < 1000  # a pass with gradients keeps more per token
    assert budget.tokens(hf_llama, "exact", length=2000) == 2000  # one sequence always fits a pass
