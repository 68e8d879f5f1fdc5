"""The TransformerLens hook names headlab uses, in one place.

``Z`` — ``blocks.{layer}.attn.hook_z``: per-head attention outputs before W_O, shape
(batch, pos, head, d_head). Every scorer ablates, patches or differentiates this one hook.
``PATTERN`` — ``blocks.{layer}.attn.hook_pattern``: attention probabilities, (batch, head, query, key).
"""

__all__ = ["Z", "hooks_active", "pattern", "z"]

Z = "blocks.{layer}.attn.hook_z"
PATTERN = "blocks.{layer}.attn.hook_pattern"


def z(layer: int) -> str:
    return Z.format(layer=layer)


def pattern(layer: int) -> str:
    return PATTERN.format(layer=layer)


def hooks_active(model) -> bool:
    """Whether any hook is on one of the model's hook points (``mask_heads``, ``steer``, ``model.hooks(...)``,
    ``add_hook``): then the model computes something else than its weights say."""
    points = getattr(model, "hook_dict", {}).values()
    return any(p._forward_hooks or p._forward_pre_hooks or p._backward_hooks for p in points)
