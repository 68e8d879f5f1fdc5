"""The checks of the workshop (``notebooks/03_workshop.ipynb``; answers in ``03_workshop_solutions.ipynb``).

Each ``check_*`` recomputes the right answer itself, from the model, the task or the scores it is given (no
stored numbers), and compares the learner's answer with it. A right answer prints one ✓ line. A wrong one
raises ``NotYet``, whose message is one hint for that kind of mistake (still ``...``, wrong type, wrong sign,
off by one, ``|score|`` instead of the signed score, …); Jupyter shows it as one red line, no traceback.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .analysis.interventions import mask_heads
from .cache import Memo, ids_fingerprint
from .engine import hooks
from .engine.forward import device_of, final_resid
from .engine.hooks import hooks_active
from .errors import HeadlabError, InputError, InputTypeError
from .metrics import evaluate, prompt_ids
from .results import HeadScores, check_model
from .tasks import Task

__all__ = [
    "ATOL",
    "EVALS",
    "MARGIN",
    "NotYet",
    "attention",
    "check_ablation",
    "check_attended",
    "check_behaviour",
    "check_bottom_head",
    "check_top_head",
]

RTOL, ATOL = 1e-3, 1e-3  # a learner's number is right within these of the recomputed one
MARGIN = 2.0  # Exercise 1's confident preference: a logit difference above 2, the right answer ≥ e² ≈ 7× as likely


class NotYet(HeadlabError, AssertionError):
    """A wrong workshop answer: the message is the hint. In Jupyter it shows as one line (no traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m✗ {self}\x1b[0m"]


def attention(model, prompt: str, layer: int, head: int) -> tuple[np.ndarray, list[str]]:
    """One head's attention pattern on ``prompt``: (n, n) query × key probabilities and the n tokens (the
    start token first), for ``plot.attention_pattern``."""
    if not isinstance(prompt, str) or not prompt:
        raise InputError(f"prompt must be a non-empty str, got {prompt!r}")
    layer, head = _ints((layer, head), len(model.blocks), model.cfg.n_heads)
    ids = prompt_ids(model.tokenizer, prompt)
    box = {}

    def grab(pattern, hook):
        box["pattern"] = pattern[0, head].detach().float().cpu().numpy()

    with torch.no_grad():
        final_resid(model, torch.tensor([ids], device=device_of(model)), [(hooks.pattern(layer), grab)])
    return box["pattern"], model.tokenizer.convert_ids_to_tokens(ids)


def check_behaviour(mean_logit_diff, share_confident, model, task: Task, margin: float = MARGIN) -> None:
    """Exercise 1: the task's mean logit difference, and the share of items (0–1) whose logit difference is above
    ``margin`` (the model prefers the right answer confidently: at least e^margin times as likely)."""
    _check_task(task)
    value = _number(mean_logit_diff, "Exercise 1, mean_logit_diff", per_item=len(task))
    _number(share_confident, "Exercise 1, share_confident", per_item=len(task))
    ld = _logit_diff(model, task)
    mean, share = ld.mean().item(), (ld > margin).float().mean().item()
    if not _close(value, mean):
        if _close(value, ld.sum().item()):
            hint = "that is the sum over the items: take the mean (.mean())"
        elif _close(value, -mean):
            hint = "wrong sign: the logit difference is logit(answer) − logit(counterfactual answer)"
        elif _close(value, ld.abs().mean().item()):
            hint = "that is the mean of |logit difference|: keep the sign (.logit_diff.mean())"
        elif _close(value, ld.median().item()) or _close(value, float(np.median(ld.numpy()))):
            hint = "that is the median: take the mean"
        else:
            hint = (
                f"{value:.3f} is not the mean logit difference of {task.name}: evaluate(model, task).logit_diff.mean()"
            )
        raise NotYet(f"Exercise 1, mean_logit_diff: {hint}")
    value = _number(share_confident, "Exercise 1, share_confident", per_item=len(ld))
    if not _close(value, share):
        n_right, above_zero = int((ld > margin).sum()), (ld > 0).float().mean().item()
        if _close(value, n_right) and n_right != share:
            hint = f"{value:g} is a count: divide by the number of items ({len(ld)}) for a share from 0 to 1"
        elif _close(value, 100 * share) and share:
            hint = f"{value:g} is a percentage: give a share from 0 to 1"
        elif _close(value, above_zero):
            hint = f"that is every item with logit_diff > 0: count only the confident ones, logit_diff > {margin:g}"
        elif _close(value, 1 - share):
            hint = f"that is the share at or below {margin:g}: count logit_diff > {margin:g}"
        else:
            hint = (
                f"{value:g} is not the share of items with logit_diff > {margin:g}: "
                f"(clean.logit_diff > {margin:g}).float().mean()"
            )
        raise NotYet(f"Exercise 1, share_confident: {hint}")
    print(
        f"✓ Exercise 1: mean logit difference {mean:.2f}; {share:.0%} of {len(ld)} items prefer the right answer by "
        f"more than {margin:g} logits ({int((ld > 0).sum())} prefer it at all)"
    )


def check_top_head(top_head, scores: HeadScores, task) -> None:
    """Exercise 2: ``top_head`` = (layer, head) of the highest signed score of ``task`` in ``scores``."""
    m = _map(scores, task)
    right = _argmax(m)
    given = _head(top_head, "Exercise 2, top_head", m.shape)
    if given != right:
        hint = _head_hint(given, right, m.shape)
        if hint is None:
            if given == _argmax(np.abs(m)):
                hint = "that head has the largest |score|, and its score is negative: take the largest signed score"
            elif given == _argmax(-m):
                hint = "that is the lowest score (the bottom of the ranking): you want the highest"
            else:
                hint = _rank_hint(given, m, "the largest value")
        raise NotYet(f"Exercise 2, top_head: {hint}")
    print(f"✓ Exercise 2: L{right[0]}.H{right[1]} is the top head of {_name(task)} (score {m[right]:+.2f})")


def check_bottom_head(bottom_head, scores: HeadScores, task) -> None:
    """Exercise 3: ``bottom_head`` = (layer, head) of the lowest (most negative) signed score of ``task``."""
    m = _map(scores, task)
    right = _argmax(-m)
    given = _head(bottom_head, "Exercise 3, bottom_head", m.shape)
    if given != right:
        hint = _head_hint(given, right, m.shape)
        if hint is None:
            if given == _argmax(m):
                hint = "that is the top head: the bottom of the ranking is the lowest score"
            elif given == _argmax(-np.abs(m)):
                hint = (
                    "that head has the smallest |score| (it barely matters): the bottom of the ranking is the most "
                    "negative signed score"
                )
            else:
                hint = _rank_hint(given, m, "the smallest (most negative) value")
        raise NotYet(f"Exercise 3, bottom_head: {hint}")
    print(f"✓ Exercise 3: L{right[0]}.H{right[1]} is the bottom head of {_name(task)} (score {m[right]:+.2f})")


def check_ablation(ablated_top, ablated_bottom, model, task: Task, scores: HeadScores) -> None:
    """Exercise 3: the task's mean logit difference with its top head zero-ablated (``mask_heads``), and with
    its bottom head zero-ablated; the heads are read from ``scores``."""
    _check_task(task)
    n = len(task)
    (
        _number(ablated_top, "Exercise 3, ablated_top", per_item=n),
        _number(ablated_bottom, "Exercise 3, ablated_bottom", n),
    )
    m = _map(scores, task.name)
    check_model("check_ablation()", scores, model)
    top, bottom = _argmax(m), _argmax(-m)
    clean = _logit_diff(model, task).mean().item()
    want_top = _logit_diff(model, task, top).mean().item()
    want_bottom = _logit_diff(model, task, bottom).mean().item()
    for name, value, want, head, other in (
        ("ablated_top", ablated_top, want_top, top, want_bottom),
        ("ablated_bottom", ablated_bottom, want_bottom, bottom, want_top),
    ):
        value = _number(value, f"Exercise 3, {name}", per_item=n)
        if _close(value, want):
            continue
        label = f"L{head[0]}.H{head[1]}"
        if _close(value, clean):
            hint = f"that is the clean metric: evaluate inside the `with mask_heads(model, [{head}]):` block"
        elif _close(value, clean - want):
            hint = "that is the change (clean − ablated): give the metric itself, with the head ablated"
        elif _close(value, want - clean):
            hint = "that is the change (ablated − clean): give the metric itself, with the head ablated"
        elif _close(value, other):
            hint = f"that is the metric with the other head ablated: mask {label} here"
        elif _close(value, -want):
            hint = "wrong sign: report logit_diff.mean() as it is"
        else:
            hint = f"{value:.3f} is not the mean logit difference with {label} ablated: mask_heads(model, [{head}])"
        raise NotYet(f"Exercise 3, {name}: {hint}")
    print(
        f"✓ Exercise 3: clean {clean:.2f}; top head L{top[0]}.H{top[1]} ablated {want_top:.2f} "
        f"({want_top - clean:+.2f}); "
        f"bottom head L{bottom[0]}.H{bottom[1]} ablated {want_bottom:.2f} ({want_bottom - clean:+.2f})"
    )


def check_attended(attended, model, prompt: str, scores: HeadScores, task) -> None:
    """Exercise 4: the token (str) that the top head of ``task`` attends to most from the last position of
    ``prompt``."""
    if attended is Ellipsis:
        raise NotYet("Exercise 4, attended: replace the ... with your answer (a token, e.g. tokens[3])")
    if isinstance(attended, (numbers.Integral, np.integer)) and not isinstance(attended, bool):
        hint = f"{attended} is a position: give the token there, tokens[{attended}]"
        raise NotYet(f"Exercise 4, attended: {hint}")
    if not isinstance(attended, str):
        raise NotYet(f"Exercise 4, attended: give a token (a str such as tokens[3]), not {type(attended).__name__}")
    m = _map(scores, task)
    check_model("check_attended()", scores, model)
    layer, head = _argmax(m)
    pattern, tokens = attention(model, prompt, layer, head)
    row = pattern[-1]
    right = int(row.argmax())
    plain = [_plain(t) for t in tokens]
    if _plain(attended) == plain[right]:
        print(
            f"✓ Exercise 4: from {tokens[-1]!r}, L{layer}.H{head} attends most to {tokens[right]!r} ({row[right]:.0%})"
        )
        return
    if _plain(attended) not in plain:
        hint = f"{attended!r} is not a token of this prompt: pick one of {tokens}"
    elif _plain(attended) == plain[-1]:
        hint = "that is the last token itself (the last column?): read the last row, pattern[-1], and take its largest"
    elif _plain(attended) == plain[int(pattern.sum(0).argmax())]:
        hint = "that is the most attended token over all queries: read only the last row, pattern[-1]"
    else:
        i = plain.index(_plain(attended))
        hint = (
            f"from the last position the head gives {attended!r} {row[i]:.0%} of its attention: find the row's largest"
        )
    raise NotYet(f"Exercise 4, attended: {hint}")


# --- helpers -------------------------------------------------------------------------------------------------


EVALS = Memo("workshop logit differences", size=16)  # a rerun check costs nothing


def _logit_diff(model, task: Task, head: tuple[int, int] | None = None) -> torch.Tensor:
    """Per-item logit differences of ``task``, clean or with ``head`` zero-ablated (``mask_heads``)."""
    if hooks_active(model):
        raise NotYet("run the check outside the `with mask_heads(...)` block: it needs the model without hooks")

    def make():
        if head is None:
            ld = evaluate(model, task).logit_diff
        else:
            with mask_heads(model, [head]):
                ld = evaluate(model, task).logit_diff
        if ld is None:
            raise InputError(f"task {task.name!r} has no counterfactuals: the workshop needs a logit difference")
        return ld

    settings = {
        "what": "workshop logit_diff",
        "task": ids_fingerprint(model.tokenizer, task),
        "head": head and [int(x) for x in head],
    }
    return EVALS.get(model, settings, make)


def _check_task(task) -> None:
    if not isinstance(task, Task):
        raise InputTypeError(f"task must be a Task (e.g. builtin([name])[name]), not {type(task).__name__}")


def _map(scores, task) -> np.ndarray:
    if not isinstance(scores, HeadScores):
        raise InputTypeError(f"scores must be the HeadScores from headlab.score(...), not {type(scores).__name__}")
    return scores[_name(task)]


def _name(task) -> str:
    return task.name if isinstance(task, Task) else task


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= ATOL + RTOL * abs(b)


def _argmax(m: np.ndarray) -> tuple[int, int]:
    i = int(np.nanargmax(m))
    return i // m.shape[1], i % m.shape[1]


def _plain(token: str) -> str:
    return str(token).replace("Ġ", " ").replace("▁", " ").strip()


def _number(answer, where: str, per_item: int) -> float:
    """``answer`` as a float, or NotYet (prefixed ``where``, e.g. "Exercise 1, baseline") naming what it is."""
    if answer is Ellipsis:
        raise NotYet(f"{where}: replace the ... with your answer (a number)")
    if isinstance(answer, (torch.Tensor, np.ndarray)):
        size = answer.size if isinstance(answer, np.ndarray) else answer.numel()
        if size != 1:
            per = f" (one per item: {per_item} items)" if size == per_item else ""
            raise NotYet(f"{where}: that holds {size} values{per}: reduce it to one number, e.g. .mean()")
        answer = answer.item()
    if isinstance(answer, (bool, np.bool_)):
        raise NotYet(f"{where}: {answer} is a yes/no: give a number")
    if not isinstance(answer, numbers.Real):
        raise NotYet(f"{where}: give a number, not {type(answer).__name__} {answer!r}")
    if not np.isfinite(answer):
        raise NotYet(f"{where}: {answer} is not a finite number")
    return float(answer)


def _ints(pair, n_layers: int, n_heads: int) -> tuple[int, int]:
    for v in pair:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
            raise InputError(f"layer and head must be ints, got {pair!r}")
    layer, head = int(pair[0]), int(pair[1])
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise InputError(f"head ({layer}, {head}) is outside this {n_layers} × {n_heads} model")
    return layer, head


def _head(answer, where: str, shape: tuple[int, int]) -> tuple[int, int]:
    """``answer`` as a (layer, head) pair of ints, or NotYet (prefixed ``where``) naming what it is instead."""
    L, H = shape
    if answer is Ellipsis:
        raise NotYet(f"{where}: replace the ... with your answer, a pair (layer, head) such as (3, 7)")
    if isinstance(answer, (numbers.Integral, np.integer)) and not isinstance(answer, bool):
        raise NotYet(f"{where}: {answer} is one number (a flat index?): give (layer, head), e.g. divmod(i, {H})")
    if isinstance(answer, (torch.Tensor, np.ndarray)):
        answer = answer.tolist()
    if isinstance(answer, str) or not isinstance(answer, (tuple, list)):
        raise NotYet(f"{where}: give a pair (layer, head) of ints, not {type(answer).__name__} {answer!r}")
    if len(answer) == 3:
        raise NotYet(f"{where}: {tuple(answer)!r} has three entries, (layer, head, score)?: keep (layer, head)")
    if len(answer) != 2:
        raise NotYet(f"{where}: give a pair (layer, head), not {len(answer)} values")
    if not all(isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) for v in answer):
        raise NotYet(f"{where}: layer and head must be ints, got {tuple(answer)!r}")
    layer, head = int(answer[0]), int(answer[1])
    if not (0 <= layer < L and 0 <= head < H):
        off = " (swapped? the order is (layer, head))" if 0 <= head < L and 0 <= layer < H else ""
        off = " (they count from 0)" if layer == L or head == H else off
        raise NotYet(f"{where}: ({layer}, {head}) is outside the model: layers 0–{L - 1}, heads 0–{H - 1}{off}")
    return layer, head


def _head_hint(given: tuple[int, int], right: tuple[int, int], shape) -> str | None:
    """The hint for a swapped or off-by-one (layer, head), else None."""
    (l, h), (rl, rh) = given, right
    if (h, l) == right:
        return "layer and head are swapped: give (layer, head)"
    if (l - 1, h) == right or (l, h - 1) == right or (l - 1, h - 1) == right:
        return "off by one: layers and heads count from 0 (L0, H0 is the first head)"
    if abs(l - rl) + abs(h - rh) == 1:
        return "off by one: look again at the row (layer) and column (head) of the hot spot"
    return None


def _rank_hint(given: tuple[int, int], m: np.ndarray, want: str) -> str:
    rank = int((m > m[given]).sum()) + 1
    return f"L{given[0]}.H{given[1]} ranks {rank} of {m.size} (score {m[given]:+.3f}): look for {want} of the map"
