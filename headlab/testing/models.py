"""Tiny random models with an offline byte-level tokenizer, for tests, benchmarks and the workshop.

- ``byte_tokenizer()``: 256 byte tokens + bos/eos/pad, prepends BOS.
- ``tiny(...)``: a small random Llama-style TransformerBridge (named ``tiny-…``: ``models.TINY_PREFIX``).
- ``tiny_hf(...)``: a small random Hugging Face ``LlamaForCausalLM``, a user's own model in miniature.
- ``planted(heads, ...)``: a ``tiny`` model where only ``heads`` can change the output (ground truth for scorers).
"""

from __future__ import annotations

import numbers

from ..errors import InputError
from ..models import TINY_PREFIX

__all__ = ["byte_tokenizer", "planted", "tiny", "tiny_hf"]


def byte_tokenizer():
    """An offline byte-level tokenizer (256 byte tokens + bos/eos/pad) that prepends BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in ("<|bos|>", "<|eos|>", "<|pad|>"):
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    from tokenizers.processors import TemplateProcessing

    core.post_processor = TemplateProcessing(single="<|bos|> $A", special_tokens=[("<|bos|>", vocab["<|bos|>"])])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        add_bos_token=True,
        padding_side="right",
        name_or_path="headlab/byte-tokenizer",
    )
    return tok


def tiny(
    n_layers: int = 2,
    n_heads: int = 4,
    d_model: int = 64,
    seed: int = 0,
    n_kv_heads: int | None = None,
    n_ctx: int = 256,
):
    """A small random Llama-style bridge (RMSNorm, rotary, gated MLP, GQA when ``n_kv_heads`` < ``n_heads``)."""
    import torch
    import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    _check_shape("tiny", n_layers=n_layers, n_heads=n_heads, d_model=d_model, n_ctx=n_ctx)
    if d_model % n_heads:
        raise InputError(f"tiny(): d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    _check_kv("tiny", n_heads, n_kv_heads)
    _check_seed("tiny", seed)
    tok = byte_tokenizer()
    cfg = TransformerBridgeConfig(
        d_model=d_model,
        d_head=d_model // n_heads,
        n_layers=n_layers,
        n_ctx=n_ctx,
        n_heads=n_heads,
        d_vocab=len(tok),
        d_mlp=4 * d_model,
        n_key_value_heads=n_kv_heads or n_heads,
        seed=seed,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        act_fn="silu",
        gated_mlp=True,
        model_name=f"{TINY_PREFIX}-{n_layers}x{n_heads}-d{d_model}-s{seed}",
    )
    bridge = TransformerBridge.boot_native(cfg, tokenizer=tok, model_name=cfg.model_name, dtype=torch.float32)
    bridge.headlab_name = cfg.model_name
    bridge.eval()
    return bridge


def _check_shape(fn: str, **sizes) -> None:
    for arg, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"{fn}(): {arg} must be a positive int, got {value!r}")


def _check_kv(fn: str, n_heads: int, n_kv_heads) -> None:
    if n_kv_heads is None:
        return
    _check_shape(fn, n_kv_heads=n_kv_heads)
    if n_heads % n_kv_heads:
        raise InputError(f"{fn}(): n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")


def _check_seed(fn: str, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"{fn}(): seed must be a non-negative int, got {seed!r}")


def tiny_hf(
    n_layers: int = 2, n_heads: int = 4, d_model: int = 32, seed: int = 0, n_kv_heads: int = 2, vocab_size: int = 259
):
    """A small random Hugging Face ``LlamaForCausalLM`` (byte vocabulary by default): a user's own model in
    miniature. ``load_model(tiny_hf(), tokenizer=byte_tokenizer())`` wraps it; unlike ``tiny``'s native bridge
    it keeps a key/value cache, so attribution runs it packed (``headlab.engine.packing``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    _check_shape("tiny_hf", n_layers=n_layers, n_heads=n_heads, d_model=d_model, vocab_size=vocab_size)
    if d_model % n_heads:
        raise InputError(f"tiny_hf(): d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    _check_kv("tiny_hf", n_heads, n_kv_heads)
    _check_seed("tiny_hf", seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=256,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def planted(heads, n_layers: int = 2, n_heads: int = 4, d_model: int = 64, seed: int = 0, **kwargs):
    """A ``tiny`` model whose W_O is zero for every head except ``heads`` [(layer, head), ...].

    Ground truth for scorers: only the planted heads can change the output, so exact ablation gives
    every other head exactly 0 and both methods must rank the planted heads first.
    """
    import torch

    _check_shape("planted", n_layers=n_layers, n_heads=n_heads)
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(x, numbers.Integral) for x in heads):
        raise InputError(f"planted(): heads={heads!r} is one pair: pass a list of pairs, [{heads!r}]")
    try:
        pairs = list(heads)
    except TypeError:
        raise InputError(
            f"planted(): heads must be a list of (layer, head) pairs, not {type(heads).__name__}"
        ) from None
    keep = set()
    for i, pair in enumerate(pairs):
        try:
            l, h = pair
        except (TypeError, ValueError):
            raise InputError(f"planted(): heads[{i}] = {pair!r} is not a (layer, head) pair") from None
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in (l, h)):
            raise InputError(f"planted(): heads[{i}] = {pair!r}: layer and head must be ints")
        keep.add((int(l), int(h)))
    bad = [(l, h) for l, h in keep if not (0 <= l < n_layers and 0 <= h < n_heads)]
    if bad:
        raise InputError(f"planted(): heads {bad} are outside a {n_layers} × {n_heads} model")
    model = tiny(n_layers=n_layers, n_heads=n_heads, d_model=d_model, seed=seed, **kwargs)
    d_head = d_model // n_heads
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            w_o = block.attn.o.original_component.weight  # (d_model, n_heads * d_head)
            for h in range(n_heads):
                if (layer, h) not in keep:
                    w_o[:, h * d_head : (h + 1) * d_head] = 0.0
    model.headlab_name = f"{model.headlab_name}-planted-" + "-".join(f"L{l}H{h}" for l, h in sorted(keep))
    return model
