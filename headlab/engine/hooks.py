"""The TransformerLens hook names headlab uses, in one place.

``Z`` — ``blocks.{layer}.attn.hook_z``: per-head attention outputs before W_O, shape
(batch, pos, head, d_head). Every scorer ablates, patches or differentiates this one hook.
``PATTERN`` — ``blocks.{layer}.attn.hook_pattern``: attention probabilities, (batch, head, query, key).
"""

Z = "blocks.{layer}.attn.hook_z"
PATTERN = "blocks.{layer}.attn.hook_pattern"


def z(layer: int) -> str:
    return Z.format(layer=layer)


def pattern(layer: int) -> str:
    return PATTERN.format(layer=layer)
