"""One head up close: its score, rank and attention pattern on one of the task's prompts, and how a figure or a
line of text goes into an ``Output`` widget's state (so that a call from a cell adds nothing to that cell's own
outputs, which nbval compares)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from ...engine import hooks
from ...errors import InputError
from ...metrics import max_positions, prompt_ids
from .. import plot

__all__ = ["HeadDetails", "NO_PATTERN", "head_details", "prompt_of", "shown_figure", "shown_text"]


@dataclass
class HeadDetails:
    """One head of one task: its raw score and displayed value, rank (1 = best of n_heads), and its
    attention pattern (n_tokens × n_tokens, query × key) on one of the task's prompts (None, with no figure, on
    a model of the nnsight or NDIF engine: its attention kernel gives no pattern)."""

    task: str
    layer: int
    head: int
    value: float
    shown: float
    rank: int
    n_heads: int
    tokens: list[str]
    pattern: np.ndarray | None
    figure: Figure | None
    map_name: str = ""
    item: int = 0

    def summary(self) -> str:
        """One line: the head's score, shown value and rank (a missing head: no score, no rank)."""
        map_name = f" · {self.map_name}" if self.map_name else ""
        if math.isnan(self.value):
            said = "no score (NaN: missing in this map), not ranked"
        else:
            said = f"score {self.value:.4g} (shown {self.shown:.4g}), rank {self.rank} of {self.n_heads} by s"
        if self.pattern is None:
            return f"L{self.layer}.H{self.head} in {self.task}{map_name}: {said} · {NO_PATTERN}"
        return f"L{self.layer}.H{self.head} in {self.task}{map_name}: {said} · pattern of prompt {self.item}"


NO_PATTERN = "no attention pattern: the nnsight and NDIF engines run an attention kernel that gives none"


def prompt_of(bridge, task, item: int) -> list[int]:
    """The token ids of ``task``'s ``item``-th prompt, refused in one line where the model cannot take it."""
    items = task.items
    if not 0 <= item < len(items):
        raise InputError(f"no item {item} in {task.name!r}: it has items 0–{len(items) - 1}")
    ids = prompt_ids(bridge.tokenizer, items[item].prompt)
    n_ctx = max_positions(bridge)
    if n_ctx is not None and len(ids) > n_ctx:
        raise InputError(
            f"task {task.name!r}: item {item}'s prompt is {len(ids)} tokens but the model takes at most {n_ctx}"
        )
    return ids


def head_details(bridge, scores, task, layer: int, head: int, item: int, normalize: str, map_name: str) -> HeadDetails:
    """The details of head (layer, head) of ``scores`` for ``task`` (a Task), its pattern on prompt ``item``
    (one forward pass of that prompt, on the bridge; a model of the nnsight or NDIF engine runs no pass: its
    details are the map's, without a pattern)."""
    import torch

    ids = prompt_of(bridge, task, item)
    pattern = fig = None
    tokens = [bridge.tokenizer.decode([i]) for i in ids]
    if getattr(bridge, "engine", "bridge") == "bridge":
        with torch.no_grad():
            _, cache = bridge.run_with_cache(
                torch.tensor([ids], device=next(bridge.parameters()).device), names_filter=hooks.pattern(layer)
            )
        pattern = cache[hooks.pattern(layer)][0, head].float().cpu().numpy()
        fig = plot.attention_pattern(pattern, tokens, title=f"L{layer}.H{head} · {task.name} · prompt {item}")
    t = scores.tasks.index(task.name)
    L, H = scores.shape[1:]
    return HeadDetails(
        task.name,
        layer,
        head,
        float(scores.values[t, layer, head]),
        float(scores.normalized(normalize)[t, layer, head]),
        int(scores.rank(task.name)[layer, head]),
        L * H,
        tokens,
        pattern,
        fig,
        map_name=map_name,
        item=item,
    )


def shown_text(text: str, html_text: str | None = None) -> dict:
    """A display_data output (an ``Output`` widget's state) of plain text, and its HTML where given."""
    data = {"text/plain": text, **({"text/html": html_text} if html_text else {})}
    return {"output_type": "display_data", "metadata": {}, "data": data}


def shown_figure(fig) -> dict:
    """A display_data output of a figure's PNG, as base64 text (raw bytes would travel as a binary buffer,
    which the output renderer cannot show)."""
    png = base64.b64encode(fig._repr_png_()).decode("ascii")
    return {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": repr(fig)}}
