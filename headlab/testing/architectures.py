"""Tiny random-weight Hugging Face models of many architectures, built offline: the conformance suite's zoo.

headlab runs any causal LM the TransformerLens bridge wraps, but each architecture hands its blocks other
arguments (GPT-NeoX's ``layer_past``, BLOOM's ``alibi``), other positions (per-layer rotary tables in Gemma 3,
partial rotary in StableLM and GPT-J, none in OPT), other masks (sliding windows) and other heads (Gemma 2's
final-logit softcap, tied embeddings). ``tiny_arch(name)`` builds one of them in miniature from its config
alone — no hub, no download — so that ``tests/conformance`` can check every scorer against the plain
references (``headlab.testing.reference``) on each, in milliseconds per forward:

```python
from headlab.testing.architectures import tiny_arch
from headlab import load_model
from headlab.testing import byte_tokenizer

model = load_model(tiny_arch("gemma2", sliding_window=4), tokenizer=byte_tokenizer())
```

What makes them realistic despite their size (d_model 32, 2 layers, 4 heads, d_mlp 64):

- weights drawn with std ``INIT_STD`` (Hugging Face's 0.02 makes every attention pattern near uniform, which
  hides position and mask bugs), biases and norm weights perturbed (a zero bias hides a dropped bias);
- the unembedding scaled so that the largest |logit| on a random byte prompt is ``logit_scale`` (tiny random
  models give |logit| ≈ 1, below where Gemma 2's softcap 30·tanh(x/30) bends);
- ``config.architectures`` set to the model class (config-built models leave it None, and the bridge then
  picks no adapter for Gemma 3, OLMo 2 or Falcon).

This module is for tests and benchmarks; it imports nothing from headlab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers as T

from ..errors import InputError

__all__ = ["ARCHITECTURES", "BOS", "tiny_arch"]

INIT_STD = 0.2  # std of every weight matrix and embedding
BIAS_STD = 0.05  # biases and norm weights: N(default, BIAS_STD)
PROBE_TOKENS = 16  # length of the random byte prompt the logit scale is measured on
BOS, EOS, PAD = 256, 257, 258  # headlab.testing.byte_tokenizer's special tokens


@dataclass(frozen=True)
class Shape:
    """What every builder reads: sizes, and the two switches ``tiny_arch`` takes."""

    n_layers: int
    n_heads: int
    d_model: int
    vocab_size: int
    n_ctx: int
    sliding_window: int | None

    @property
    def d_mlp(self) -> int:
        return 2 * self.d_model

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


def _common(s: Shape, kv: int | None = None) -> dict:
    """The Llama-family names (most modern configs use them); ``kv`` query heads per key/value head."""
    return dict(
        vocab_size=s.vocab_size,
        hidden_size=s.d_model,
        intermediate_size=s.d_mlp,
        num_hidden_layers=s.n_layers,
        num_attention_heads=s.n_heads,
        num_key_value_heads=s.n_heads // kv if kv else s.n_heads,
        max_position_embeddings=s.n_ctx,
    )


def _window(s: Shape) -> dict:
    return {} if s.sliding_window is None else {"sliding_window": s.sliding_window}


def _alternating(s: Shape) -> list[str]:
    """Sliding and full attention alternating, sliding first (Gemma 2's layout)."""
    return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(s.n_layers)]


ARCHITECTURES = {
    "gpt2": (
        T.GPT2Config,
        T.GPT2LMHeadModel,
        lambda s: dict(
            vocab_size=s.vocab_size,
            n_embd=s.d_model,
            n_layer=s.n_layers,
            n_head=s.n_heads,
            n_inner=s.d_mlp,
            n_positions=s.n_ctx,
        ),
    ),
    "gpt_neox": (
        T.GPTNeoXConfig,
        T.GPTNeoXForCausalLM,
        lambda s: {**_common(s), "rotary_pct": 0.5},
    ),
    "gptj": (
        T.GPTJConfig,
        T.GPTJForCausalLM,
        lambda s: dict(
            vocab_size=s.vocab_size,
            n_embd=s.d_model,
            n_layer=s.n_layers,
            n_head=s.n_heads,
            n_inner=s.d_mlp,
            rotary_dim=s.d_head // 2,
            n_positions=s.n_ctx,
        ),
    ),
    "opt": (
        T.OPTConfig,
        T.OPTForCausalLM,
        lambda s: dict(
            vocab_size=s.vocab_size,
            hidden_size=s.d_model,
            num_hidden_layers=s.n_layers,
            num_attention_heads=s.n_heads,
            ffn_dim=s.d_mlp,
            max_position_embeddings=s.n_ctx,
            word_embed_proj_dim=s.d_model,
        ),
    ),
    "llama": (T.LlamaConfig, T.LlamaForCausalLM, lambda s: _common(s)),
    "llama_gqa": (T.LlamaConfig, T.LlamaForCausalLM, lambda s: _common(s, kv=2)),
    "mistral": (
        T.MistralConfig,
        T.MistralForCausalLM,
        lambda s: {**_common(s, kv=2), "sliding_window": s.sliding_window},
    ),
    "qwen2": (
        T.Qwen2Config,
        T.Qwen2ForCausalLM,
        lambda s: {
            **_common(s, kv=2),
            **(
                {}
                if s.sliding_window is None
                else {"use_sliding_window": True, "sliding_window": s.sliding_window, "max_window_layers": 1}
            ),
        },
    ),
    "qwen3": (T.Qwen3Config, T.Qwen3ForCausalLM, lambda s: {**_common(s, kv=2), "head_dim": s.d_head}),
    "gemma2": (
        T.Gemma2Config,
        T.Gemma2ForCausalLM,
        lambda s: {**_common(s, kv=2), "head_dim": s.d_head, "layer_types": _alternating(s), **_window(s)},
    ),
    "gemma3": (
        T.Gemma3TextConfig,
        T.Gemma3ForCausalLM,  # per-layer rotary: sliding layers use another base than full ones
        lambda s: {**_common(s, kv=2), "head_dim": s.d_head, "layer_types": _alternating(s), **_window(s)},
    ),
    "phi3": (T.Phi3Config, T.Phi3ForCausalLM, lambda s: _common(s, kv=2)),
    "olmo2": (T.Olmo2Config, T.Olmo2ForCausalLM, lambda s: _common(s, kv=2)),
    "falcon": (
        T.FalconConfig,
        T.FalconForCausalLM,
        lambda s: dict(
            vocab_size=s.vocab_size,
            hidden_size=s.d_model,
            num_hidden_layers=s.n_layers,
            num_attention_heads=s.n_heads,
            new_decoder_architecture=False,
            multi_query=True,
            max_position_embeddings=s.n_ctx,
        ),
    ),
    "stablelm": (T.StableLmConfig, T.StableLmForCausalLM, lambda s: _common(s, kv=2)),
    "granite": (  # Granite 3's multipliers; the logits are divided by logits_scaling
        T.GraniteConfig,
        T.GraniteForCausalLM,
        lambda s: {
            **_common(s, kv=2),
            "embedding_multiplier": 12.0,
            "residual_multiplier": 0.22,
            "attention_multiplier": 1 / s.d_head,
            "logits_scaling": 8.0,
        },
    ),
    "cohere": (T.CohereConfig, T.CohereForCausalLM, lambda s: _common(s, kv=2)),  # logits × logit_scale 0.0625
    "bloom": (
        T.BloomConfig,
        T.BloomForCausalLM,
        lambda s: dict(vocab_size=s.vocab_size, hidden_size=s.d_model, n_layer=s.n_layers, n_head=s.n_heads),
    ),
}

SLIDING = ("mistral", "qwen2", "gemma2", "gemma3")  # the architectures that take ``sliding_window``


def tiny_arch(
    name: str,
    *,
    n_layers: int = 2,
    n_heads: int = 4,
    d_model: int = 32,
    seed: int = 0,
    logit_scale: float = 40.0,
    sliding_window: int | None = None,
    tied: bool = False,
    vocab_size: int = 259,
    n_ctx: int = 256,
):
    """A random ``transformers.PreTrainedModel`` of architecture ``name`` (``ARCHITECTURES``), float32, eval.

    ``sliding_window``: the attention window of the ``SLIDING`` architectures (for Qwen 2 and Gemma 2/3 on
    their sliding layers only: Qwen 2's layers ≥ 1, Gemma's even layers); None keeps each one's default,
    wider than ``n_ctx``. ``tied``: the unembedding is the embedding. ``logit_scale``: the largest |logit|
    on a random byte prompt, before any final softcap.
    """
    if name not in ARCHITECTURES:
        raise InputError(f"tiny_arch(): unknown architecture {name!r}: choose from {sorted(ARCHITECTURES)}")
    if sliding_window is not None and name not in SLIDING:
        raise InputError(f"tiny_arch(): {name!r} has no sliding window; these do: {SLIDING}")
    if d_model % n_heads:
        raise InputError(f"tiny_arch(): d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    config_cls, model_cls, build = ARCHITECTURES[name]
    shape = Shape(n_layers, n_heads, d_model, vocab_size, n_ctx, sliding_window)
    config = config_cls(**build(shape), tie_word_embeddings=tied, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    config.architectures = [model_cls.__name__]
    torch.manual_seed(seed)
    model = model_cls(config).float().eval()
    with torch.no_grad():
        _randomize(model)
        _scale_logits(model, logit_scale, seed)
    return model


def _randomize(model) -> None:
    """Weights N(0, INIT_STD); biases N(0, BIAS_STD); norm weights N(their value, BIAS_STD) (1, or 0 for
    Gemma's 1 + w). Draws from the global generator (seeded by the caller); a tied weight is drawn once."""
    for p in model.parameters():  # a tied weight is yielded once
        if p.dim() >= 2:
            p.normal_(0.0, INIT_STD)
        else:
            p.add_(torch.randn_like(p) * BIAS_STD)


def _scale_logits(model, logit_scale: float, seed: int) -> None:
    """Scale the unembedding so that max |logit| on a random byte prompt is ``logit_scale`` (softcap off).

    Untied: the unembedding's weight and bias. Tied, scaling it would scale the embedding too, so the final
    norm's weight and bias are scaled instead (logits are linear in them); Gemma's norm multiplies by 1 + w."""
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap is not None:
        model.config.final_logit_softcapping = None
    prompt = torch.randint(0, 256, (1, PROBE_TOKENS), generator=torch.Generator().manual_seed(seed))
    factor = logit_scale / model(prompt).logits.abs().max().item()
    model.config.final_logit_softcapping = cap
    head = model.get_output_embeddings()
    if head.weight is not model.get_input_embeddings().weight:
        head.weight.mul_(factor)
        if getattr(head, "bias", None) is not None:
            head.bias.mul_(factor)
        return
    norm = _final_norm(model)
    if type(norm).__name__.startswith("Gemma"):  # x̂ · (1 + w)
        norm.weight.copy_((1 + norm.weight) * factor - 1)
    else:
        norm.weight.mul_(factor)
    if getattr(norm, "bias", None) is not None:
        norm.bias.mul_(factor)


FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


def _final_norm(model):
    """The norm just before the unembedding (the body's last module named like one)."""
    body = model.base_model
    for attr in FINAL_NORMS:
        for owner in (body, getattr(body, "decoder", None)):  # OPT keeps it in model.decoder
            norm = getattr(owner, attr, None) if owner is not None else None
            if isinstance(norm, torch.nn.Module) and hasattr(norm, "weight"):
                return norm
    raise InputError(
        f"tiny_arch(): {type(model).__name__} has no final norm with a weight ({FINAL_NORMS}) to scale tied "
        "logits by: build it with tied=False"
    )
