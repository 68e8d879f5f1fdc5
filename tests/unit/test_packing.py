import pytest
import torch

from headlab.engine import packing
from headlab.engine.forward import final_resid
from headlab.engine.packing import Pack, Run, Trie


def _slots(pack, i, pos):
    """Flat slots of piece i's sequence positions ``pos``."""
    return pack.slots(pos[None].expand(len(pack.row), -1))[i]


def test_pieces_fill_rows_longest_first_without_overlap():
    stop = torch.tensor([5, 3, 7, 2, 4])
    pack = Pack(torch.zeros(5, dtype=torch.long), stop)
    assert (pack.width, pack.n_rows) == (7, 3)  # 7 | 5 + 2 | 4 + 3
    for i, n in enumerate(stop.tolist()):
        slots = _slots(pack, i, torch.arange(n))
        assert (pack.owner.flatten()[slots] == i).all()
        assert pack.position.flatten()[slots].tolist() == list(range(n))
    assert int((pack.owner >= 0).sum()) == int(stop.sum())


def test_pieces_that_start_mid_sequence_keep_their_positions():
    pack = Pack(torch.tensor([2, 0]), torch.tensor([5, 3]), width=6)
    values = torch.arange(20).view(2, 10)
    placed = pack.place(values, fill=-1)
    assert placed.tolist() == [[2, 3, 4, 10, 11, 12]]
    assert pack.position.tolist() == [[2, 3, 4, 0, 1, 2]]
    assert pack.slots(torch.tensor([[2], [1]])).flatten().tolist() == [0, 4]


def test_a_piece_longer_than_a_row_is_refused():
    with pytest.raises(ValueError, match="does not fit rows of 4"):
        Pack(torch.tensor([0]), torch.tensor([6]), width=4)


def test_mask_keeps_pieces_apart_and_causal():
    pack = Pack(torch.tensor([0, 0]), torch.tensor([2, 3]), width=5)  # row: piece 1 (3), piece 0 (2)
    m = pack.mask()[0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    pm = pack.prefix_mask(2, torch.tensor([[0, -1]]))[0, 0].int()
    assert pm[:, :2].tolist() == [[0, 0]] * 3 + [[1, 0]] * 2  # piece 0 sees its gathered prefix slot


def test_trie_computes_each_shared_prefix_once_and_splits_large_subtrees():
    seqs = [torch.tensor(s) for s in ([1, 2, 3], [1, 2, 4, 5], [1, 2], [1, 6], [7, 8])]
    trie = Trie(seqs, width=5)  # {1 → {2 → {3, 4 → 5}, 6}} is 6 nodes: split under 1, which is copied
    assert trie.tokens.tolist() == [[1, 2, 3, 4, 5], [1, 6, 7, 8, 0]]
    assert trie.position.tolist() == [[0, 1, 2, 2, 3], [0, 1, 0, 1, 0]]
    for i, s in enumerate(seqs):
        assert trie.tokens.flatten()[trie.path[i]].tolist() == s.tolist()
        assert trie.position.flatten()[trie.path[i]].tolist() == list(range(len(s)))
    assert trie.mask()[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 0, 1, 0],  # 4 sees 1, 2 but not its sibling 3
        [1, 1, 0, 1, 1],
    ]
    with pytest.raises(ValueError, match="does not fit rows of 2"):
        Trie(seqs, width=2)


def test_trie_run_equals_each_sequence_alone(tiny_llama):
    seqs = [
        torch.tensor(s)
        for s in (
            [256, 10, 20, 30, 40],
            [256, 10, 20, 31],
            [256, 10, 21, 30, 40, 50],
            [256, 10, 20],
            [256, 7],
            [256, 10, 20, 30, 41, 42],
        )
    ]
    for width in (6, 20):  # rows of 6 split the subtree under 256 → 10; 20 holds it whole
        trie = Trie(seqs, width)
        assert int((trie.tokens > 0).sum()) < sum(len(s) for s in seqs)
        with torch.no_grad():
            flat = Run(tiny_llama, trie, trie.tokens).resid.flatten(0, 1)
        for i, s in enumerate(seqs):
            torch.testing.assert_close(flat[trie.path[i]], _alone(tiny_llama, s), atol=1e-5, rtol=1e-5)


def test_native_tiny_model_is_not_packable_but_hf_llama_is(tiny_model, tiny_llama):
    assert packing.supported(tiny_llama)
    assert not packing.supported(tiny_model)


def _alone(model, tokens):
    with torch.no_grad():
        return final_resid(model, tokens[None])[0]


def test_packed_run_equals_each_sequence_alone(tiny_llama):
    seqs = [torch.tensor(s) for s in ([256, 10, 20, 30, 40, 50], [256, 7, 8], [256, 1, 2, 3, 4])]
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    pack = Pack(torch.zeros(3, dtype=torch.long), lengths, width=8)
    assert pack.n_rows == 2
    with torch.no_grad():
        run = Run(tiny_llama, pack, pack.place(padded))
    flat = run.resid.flatten(0, 1)
    for i, s in enumerate(seqs):
        got = flat[_slots(pack, i, torch.arange(len(s)))]
        torch.testing.assert_close(got, _alone(tiny_llama, s), atol=1e-5, rtol=1e-5)


def test_suffix_run_attends_to_the_gathered_prefix(tiny_llama):
    """A counterfactual that shares its first d tokens with the clean prompt: running only positions ≥ d
    on the clean run's keys/values gives the counterfactual's own numbers."""
    clean = [torch.tensor([256, 5, 6, 7, 8, 9]), torch.tensor([256, 11, 12, 13])]
    cf = [torch.tensor([256, 5, 6, 70, 80, 9]), torch.tensor([256, 11, 120, 13])]
    first = torch.tensor([3, 2])
    lengths = torch.tensor([6, 4])
    pack = Pack(torch.zeros(2, dtype=torch.long), lengths, width=10)
    with torch.no_grad():
        run = Run(tiny_llama, pack, pack.place(torch.nn.utils.rnn.pad_sequence(clean, batch_first=True)))
    suffix = Pack(first, lengths, width=10)
    prefix_slot, prefix_owner = suffix.prefix_slots([_slots(pack, i, torch.arange(int(first[i]))) for i in range(2)])
    assert prefix_owner.tolist() == [[0, 0, 0, 1, 1]]
    assert prefix_slot.tolist() == [[0, 1, 2, 6, 7]]  # clean row: piece 0 at 0–5, piece 1 at 6–9
    with torch.no_grad():
        cf_run = Run(
            tiny_llama,
            suffix,
            suffix.place(torch.nn.utils.rnn.pad_sequence(cf, batch_first=True)),
            prefix=run.gather_kv(prefix_slot),
            prefix_owner=prefix_owner,
            rotary=run.rotary,
        )
    flat = cf_run.resid.flatten(0, 1)
    for i in range(2):
        pos = torch.arange(int(first[i]), int(lengths[i]))
        got = flat[_slots(suffix, i, pos)]
        torch.testing.assert_close(got, _alone(tiny_llama, cf[i])[pos], atol=1e-5, rtol=1e-5)
