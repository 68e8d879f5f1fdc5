"""Packing: sequences laid end to end in shared rows, each attending only to itself.

Right-padding a batch of mixed lengths spends every layer's compute on the padding (a third of the eight
builtin tasks' tokens). A ``Pack`` places pieces of sequences end to end in rows of ``width`` tokens (first
fit, longest first); a block-diagonal causal mask keeps the pieces apart and each token keeps its own
position in its sequence (rotary position embeddings), so every piece gets exactly the numbers a run of
its sequence alone would give. A piece may start mid-sequence: its earlier positions' keys and values are
then gathered from another packed run (``PrefixKV``), e.g. a resampled item's clean and counterfactual
suffixes after the prefix they share, which ran once without gradients. A ``Trie`` lays out many such
prefixes so that a token path they share is computed once (each token attends to its ancestors only).

Needs a rotary model whose blocks take only ``BLOCK_KWARGS`` and keep a key/value cache, and no sliding
window shorter than the sequences (the packed mask replaces the model's own): ``supported`` checks these and
proves a packed run equal to separate runs on the model itself, once.
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .forward import agree, device_of, final_resid, probe_tokens, proven_once

__all__ = ["Pack", "Run", "Trie", "supported", "window"]

BLOCK_KWARGS = {"attention_mask", "position_embeddings", "position_ids", "past_key_values", "use_cache"}


def _first_fit(sizes: list[int], width: int) -> tuple[list[int], list[int], int]:
    """Pieces of ``sizes`` placed in rows of ``width`` slots, first fit, largest first: each piece's row and
    offset, and the number of rows (at least 1)."""
    free, row, offset = [], [0] * len(sizes), [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        r = next((r for r, f in enumerate(free) if f >= sizes[i]), len(free))
        if r == len(free):
            free.append(width)
        row[i], offset[i] = r, width - free[r]
        free[r] -= sizes[i]
    return row, offset, max(len(free), 1)


class Pack:
    """Pieces ``[start_i, stop_i)`` of n sequences placed in ``n_rows`` rows of ``width`` slots.

    ``row`` (n,), ``offset`` (n,): where piece i's first token sits; ``owner`` (n_rows, width): the piece in
    each slot (−1: empty); ``position`` (n_rows, width): each slot's position in its sequence.
    """

    def __init__(self, start: torch.Tensor, stop: torch.Tensor, width: int | None = None):
        self.start, self.stop = start.long(), stop.long()
        size = (self.stop - self.start).tolist()
        self.width = int(width or max(max(size, default=1), 1))
        if max(size, default=0) > self.width:
            raise InputError(f"a piece of {max(size)} tokens does not fit rows of {self.width}")
        row, offset, self.n_rows = _first_fit(size, self.width)
        self.row, self.offset = torch.tensor(row, dtype=torch.long), torch.tensor(offset, dtype=torch.long)
        self.owner = torch.full((self.n_rows, self.width), -1, dtype=torch.long)
        self.position = torch.zeros((self.n_rows, self.width), dtype=torch.long)
        for i, n in enumerate(size):
            r, o = row[i], offset[i]
            self.owner[r, o : o + n] = i
            self.position[r, o : o + n] = torch.arange(int(self.start[i]), int(self.start[i]) + n)

    def slots(self, pos: torch.Tensor) -> torch.Tensor:
        """Flat slot (row · width + column) of sequence positions ``pos`` (n, P) of each piece; (n, P)."""
        return (self.row * self.width + self.offset - self.start)[:, None] + pos

    def place(self, values: torch.Tensor, fill=0) -> torch.Tensor:
        """Sequence-indexed ``values`` (n, T, ...) → packed (n_rows, width, ...); empty slots ``fill``."""
        owner, pos = self.owner.clamp(min=0), self.position
        out = values[owner, pos.clamp(max=values.shape[1] - 1)]
        mask = (self.owner < 0).view(*self.owner.shape, *([1] * (values.dim() - 2)))
        return out.masked_fill(mask, fill)

    def prefix_slots(self, prefix: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Key slots to gather for each row: piece i's earlier positions sit at flat slots ``prefix[i]`` of
        another run. Returns those slots, end to end per row, (n_rows, n_prefix), and their pieces (−1: empty)."""
        per_row = [[] for _ in range(self.n_rows)]
        for i, slots in enumerate(prefix):
            per_row[int(self.row[i])].append((slots, torch.full_like(slots, i)))
        n_prefix = max([sum(len(s) for s, _ in row) for row in per_row] + [1])
        slot = torch.zeros((self.n_rows, n_prefix), dtype=torch.long)
        owner = torch.full((self.n_rows, n_prefix), -1, dtype=torch.long)
        for r, row in enumerate(per_row):
            if row:
                s, o = torch.cat([s for s, _ in row]), torch.cat([o for _, o in row])
                slot[r, : len(s)], owner[r, : len(o)] = s, o
        return slot, owner

    def mask(self) -> torch.Tensor:
        """(n_rows, 1, width, width) bool: a slot attends to the earlier slots of its own piece."""
        same = self.owner[:, :, None] == self.owner[:, None, :]
        causal = torch.ones(self.width, self.width, dtype=torch.bool).tril()
        return (same & causal)[:, None]

    def prefix_mask(self, n_prefix: int, prefix_owner: torch.Tensor) -> torch.Tensor:
        """(n_rows, 1, width, n_prefix + width) bool: as ``mask``, after ``n_prefix`` gathered key slots
        whose pieces are ``prefix_owner`` (n_rows, n_prefix) (−1: empty), all earlier than any own slot."""
        sees = (self.owner[:, :, None] == prefix_owner[:, None, :]) & (self.owner[:, :, None] >= 0)
        return torch.cat([sees[:, None], self.mask()], dim=-1)


class Trie:
    """Shared prefixes computed once: the token sequences ``seqs`` (list of 1-d tensors) form a trie whose
    nodes sit in ``n_rows`` rows of ``width`` slots, each attending to itself and its ancestors only, at its
    depth as position. ``path[i]``: the flat slots of sequence i's tokens, in order.

    A subtree that fits a row goes there whole, after copies of its ancestors; a larger one is split into
    its children's subtrees; pieces fill rows first fit, largest first. Stands in for a ``Pack`` in ``Run``
    (``position``, ``mask()``), with ``tokens`` (n_rows, width) as its input.
    """

    def __init__(self, seqs: list[torch.Tensor], width: int):
        self.width = int(width)
        children, token, ends = [{}], [0], [[]]  # node 0: the root, above every first token
        for i, seq in enumerate(seqs):
            if len(seq) > self.width:
                raise InputError(f"a sequence of {len(seq)} tokens does not fit rows of {self.width}")
            node = 0
            for t in seq.tolist():
                if t not in children[node]:
                    children[node][t] = len(token)
                    children.append({}), token.append(t), ends.append([])
                node = children[node][t]
            ends[node].append(i)
        size = [1] * len(token)
        for node in reversed(range(len(token))):  # a child's id is larger than its parent's
            size[node] += sum(size[c] for c in children[node].values())
        pieces = []  # (ancestor chain, subtree root)

        def split(node, chain):
            if len(chain) + size[node] <= self.width or not children[node]:
                pieces.append((chain, node))
            else:
                for child in children[node].values():
                    split(child, chain + [node])

        for child in children[0].values():
            split(child, [])
        row, offset, self.n_rows = _first_fit([len(chain) + size[node] for chain, node in pieces], self.width)
        flat_tokens, depth = [0] * (self.n_rows * self.width), [0] * (self.n_rows * self.width)
        parent = list(range(self.n_rows * self.width))  # flat slot of each slot's parent (itself: none)
        slot_of = {}  # node → a slot holding it
        for (chain, node), r, o in zip(pieces, row, offset):
            at = r * self.width + o
            order = [(c, d, at + d - 1 if d else None) for d, c in enumerate(chain)]
            todo = [(node, len(chain), at + len(chain) - 1 if chain else None)]
            while todo:  # depth first: a subtree's slots are contiguous
                c, d, up = todo.pop()
                order.append((c, d, up))
                todo += [(k, d + 1, at + len(order) - 1) for k in reversed(children[c].values())]
            for k, (c, d, up) in enumerate(order):
                flat_tokens[at + k], depth[at + k] = token[c], d
                parent[at + k] = at + k if up is None else up
                slot_of.setdefault(c, at + k)
        self.tokens = torch.tensor(flat_tokens).view(self.n_rows, self.width)
        self.position = torch.tensor(depth).view(self.n_rows, self.width)
        self.parent = torch.tensor(parent).view(self.n_rows, self.width)
        self.path = [torch.zeros(0, dtype=torch.long)] * len(seqs)
        for node, items in enumerate(ends):
            if items and node:
                slots = [slot_of[node]]
                while parent[slots[-1]] != slots[-1]:
                    slots.append(parent[slots[-1]])
                for i in items:
                    self.path[i] = torch.tensor(slots[::-1])

    def mask(self) -> torch.Tensor:
        """(n_rows, 1, width, width) bool: a slot attends to itself and its ancestors."""
        up = self.parent - torch.arange(self.n_rows)[:, None] * self.width  # row-local parent slot
        seen = torch.eye(self.width, dtype=torch.bool).repeat(self.n_rows, 1, 1)
        at = torch.arange(self.width).repeat(self.n_rows, 1)
        for _ in range(int(self.position.max())):
            at = up.gather(1, at)
            seen.scatter_(2, at[..., None], True)
        return seen[:, None]


def window(model) -> int | None:
    """The model's sliding attention window, if any of its layers uses one (else None)."""
    config = getattr(getattr(model, "original_model", None), "config", None)
    size = getattr(config, "sliding_window", None)
    if not size or getattr(config, "use_sliding_window", True) is False:
        return None
    return int(size)


def supported(model, longest: int | None = None) -> bool:
    """Whether ``model`` can run packed sequences of up to ``longest`` tokens: rotary positions, blocks taking
    only ``BLOCK_KWARGS``, a key/value cache, no sliding window shorter than ``longest`` (the packed mask
    replaces the model's own), and — proven once per model and dtype — a packed run of two sequences equal to
    each run alone."""
    size = window(model)
    if longest is not None and size is not None and longest > size:
        return False
    return proven_once(model, "packable", _prove)


def _prove(model) -> bool:
    seen = {}

    def look(module, args, kwargs):
        seen.update(kwargs)

    handle = model.blocks[0].register_forward_pre_hook(look, with_kwargs=True)
    try:
        with torch.no_grad():
            final_resid(model, torch.zeros((1, 2), dtype=torch.long))
    finally:
        handle.remove()
    if not (
        set(seen) <= BLOCK_KWARGS
        and isinstance(seen.get("position_embeddings"), tuple)
        and hasattr(seen.get("past_key_values"), "layers")
    ):
        return False
    seqs = probe_tokens(model, n=2, length=5)
    lengths = torch.tensor([5, 3])
    pack = Pack(torch.zeros(2, dtype=torch.long), lengths, width=8)
    try:
        with torch.no_grad():
            packed = Run(model, pack, pack.place(seqs)).resid.flatten(0, 1)
            alone = [final_resid(model, seqs[i : i + 1, : int(n)])[0] for i, n in enumerate(lengths)]
    except Exception:  # blocks that refuse the packed mask or positions: the padded path runs
        return False
    slots = pack.slots(torch.arange(5).repeat(2, 1))
    dtype = packed.dtype
    return all(agree(packed[slots[i, : int(n)].to(packed.device)], alone[i], dtype) for i, n in enumerate(lengths))


class PrefixKV:
    """Stands in for a block's key/value cache: prepends keys/values ``keys[l]``, ``values[l]``
    (rows, kv_heads, n_prefix, d_head) to each layer's own."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor]):
        self.keys, self.values = keys, values

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int, *args, **kwargs):
        return torch.cat([self.keys[layer_idx], k], dim=-2), torch.cat([self.values[layer_idx], v], dim=-2)


class Run:
    """One packed forward of ``tokens`` (n_rows, width) to the final norm: ``resid`` (n_rows, width, d_model);
    ``keys``/``values`` per layer (n_rows, kv_heads, width, d_head), detached; ``rotary`` the position-embedding
    tables it used, one per layer (Gemma 3's sliding and full-attention layers have different ones). With
    ``prefix`` (from another run's ``gather_kv``) and ``prefix_owner`` (from ``Pack.prefix_slots``), each
    piece also attends to its gathered earlier positions. Index tensors may live on the CPU: they are moved
    to the model's device here."""

    def __init__(
        self,
        model,
        pack: Pack,
        tokens: torch.Tensor,
        fwd_hooks=(),
        prefix: PrefixKV | None = None,
        prefix_owner: torch.Tensor | None = None,
        rotary=None,
    ):
        device = device_of(model)
        self.rotary = list(rotary) if rotary is not None else [None] * len(model.blocks)
        cache = {}
        mask = pack.mask() if prefix is None else pack.prefix_mask(prefix_owner.shape[1], prefix_owner)
        mask, position = mask.to(device), pack.position.to(device)

        def repack(layer):
            def hook(module, args, kwargs):
                cache.setdefault("kv", kwargs.get("past_key_values"))
                if self.rotary[layer] is None:  # the layer's table for positions 0 … width − 1 of this run
                    self.rotary[layer] = tuple(t[:1] for t in kwargs["position_embeddings"])
                table = self.rotary[layer]
                rotary = tuple(t[0][position.to(t.device)] for t in table)
                kwargs = dict(
                    kwargs,
                    attention_mask=mask.to(args[0].device),
                    position_ids=position.to(args[0].device),
                    position_embeddings=rotary,
                )
                if prefix is not None:
                    kwargs["past_key_values"] = prefix
                return args, kwargs

            return hook

        handles = [block.register_forward_pre_hook(repack(l), with_kwargs=True) for l, block in enumerate(model.blocks)]
        try:
            self.resid = final_resid(model, tokens, fwd_hooks)
        finally:
            for h in handles:
                h.remove()
        if prefix is None:
            self.keys = [layer.keys.detach() for layer in cache["kv"].layers]
            self.values = [layer.values.detach() for layer in cache["kv"].layers]

    def gather_kv(self, slots: torch.Tensor) -> PrefixKV:
        """Keys/values of flat slots ``slots`` (rows', n) of this run, per layer (rows', kv_heads, n, d_head)."""

        def pick(t):  # (R, kvH, W, d) → (R·W, kvH, d) → (rows', kvH, n, d)
            flat = t.transpose(1, 2).reshape(-1, t.shape[1], t.shape[3])
            return flat[slots.to(flat.device)].transpose(1, 2)

        return PrefixKV([pick(k) for k in self.keys], [pick(v) for v in self.values])
