"""Plain forward passes of a bridge, stopped before the unembedding, and reading per-head ``z``.

``final_resid`` runs the model to its final norm and returns the residual stream there, so no
full-vocabulary logits are computed; ``z_of`` / ``keep_z`` read every layer's ``hook_z``;
``at_positions`` / ``unembed_at`` read the positions a metric needs.
"""

from __future__ import annotations

import torch

from . import hooks


class _Stop(Exception):
    pass


def final_resid(model, tokens: torch.Tensor, fwd_hooks=()) -> torch.Tensor:
    """Run ``model`` on ``tokens`` up to the final norm and return the residual stream (n, T, d_model).

    The forward is stopped at ``ln_final``, so no full-vocabulary logits are computed. Works with grad.
    """
    box = {}

    def stop(module, args):
        box["resid"] = args[0]
        raise _Stop

    handle = model.ln_final.register_forward_pre_hook(stop)
    try:
        with model.hooks(fwd_hooks=list(fwd_hooks)):
            model(tokens)
    except _Stop:
        pass
    finally:
        handle.remove()
    return box["resid"]


def gather_positions(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x (b, T, d), pos (b, P) → (b, P, d)."""
    return x.gather(1, pos.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def at_positions(x: torch.Tensor, read_pos: torch.Tensor) -> torch.Tensor:
    """x (k·n, T, d) → (k·n, P, d) at ``read_pos`` (n, P), tiled over the k copies."""
    return gather_positions(x, read_pos.repeat(x.shape[0] // read_pos.shape[0], 1))


def unembed_at(model, x: torch.Tensor, read_pos: torch.Tensor) -> torch.Tensor:
    """Final residual (k·n, T, d) → logits (k·n, P, V) at ``read_pos`` (n, P), tiled over the k copies."""
    return model.unembed(model.ln_final(at_positions(x, read_pos)))


def keep_z(zs: list, grad: bool = False):
    """Hooks keeping each layer's z in ``zs``: detached, or with ``grad`` attached to a graph that starts at
    layer 0's z (nothing below it is differentiated)."""

    def keep(layer):
        def hook(z, hook):
            if not grad or layer == 0:
                z = z.detach().requires_grad_(grad)
            zs[layer] = z
            return z

        return hook

    return [(hooks.z(layer), keep(layer)) for layer in range(len(zs))]


def z_of(model, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Per layer (n, T, H, d_head): z of a plain no-grad run (stopped before the unembedding)."""
    zs = [None] * len(model.blocks)
    with torch.no_grad():
        final_resid(model, tokens, keep_z(zs))
    return zs
