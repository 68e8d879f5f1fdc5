"""How many tokens one forward pass may hold: from the model's shape, its dtype and its device's free memory.

A pass's memory grows with its tokens: without gradients (exact ablation) each token keeps its residual
stream at every block input (``Replay``) plus one block's working set; with gradients (attribution) every
block keeps its activations for the backward pass. ``tokens(model, kind)`` divides a share (``SHARE``) of the
device's free memory by those per-token bytes and caps the result with ``CAPS``, the sizes measured fastest on
a 2-core CPU (larger passes were slower there; a GPU takes them as large as memory allows).
"""

from __future__ import annotations

import os

import torch

__all__ = ["CAPS", "SHARE", "free_bytes", "token_bytes", "tokens"]

SHARE = 0.5  # of the free memory one pass may use
CAPS = {"exact": 16384, "packed": 2048, "padded": 512}  # tokens per pass on a CPU (measured, docs/history)
GPU_CAP = 1 << 20


def free_bytes(device: torch.device) -> int:
    """Free memory of ``device`` in bytes (CPU: the kernel's MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def token_bytes(model, grad: bool, length: int = 256) -> int:
    """Activation bytes one token of a ``length``-token sequence costs in a pass (an upper estimate)."""
    cfg = model.cfg
    size = torch.finfo(next(model.parameters()).dtype).bits // 8
    d, L, H = int(cfg.d_model), int(cfg.n_layers), int(cfg.n_heads)
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * d)
    block = 8 * d + 3 * d_mlp + 2 * H * length  # one block's working set: projections, MLP, attention scores
    if grad:
        return size * L * block + 4 * L * d  # every block kept for the backward, ∂metric/∂z in float32
    return size * (2 * L * d + block)  # the kept block inputs (and a counterfactual's z) + one block at work


def tokens(model, kind: str, length: int = 256) -> int:
    """Tokens per pass for ``kind`` "exact" (no gradients), "packed" or "padded" (attribution)."""
    device = next(model.parameters()).device
    fit = int(SHARE * free_bytes(device) // token_bytes(model, grad=kind != "exact", length=length))
    cap = CAPS[kind] if device.type == "cpu" else GPU_CAP
    return max(length, min(cap, fit))
