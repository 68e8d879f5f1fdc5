"""ITI-style steering (Li et al. 2023, as used by Cognitive Mirrors): push a task's top heads along the
direction from the activations of items the model gets wrong to those it gets right.

A head's activation is its ``hook_z`` at the last prompt position (where the first answer token is
predicted). Direction = mean(right) − mean(wrong), unit-normalised, scaled by σ (the std of the items'
activations along it); ``steer`` adds α · σ · direction at every position. Directions are cross-fitted: the
items are split in two, each half is steered with directions fitted on the other half, so the reported
accuracy is measured on items the directions never saw.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from ..engine import hooks
from ..engine.forward import device_of, gather_positions
from ..engine.nnsight_engine import require_bridge
from ..engine.progress import bar as progress_bar
from ..errors import InputError, InputTypeError
from ..metrics import check_length, encode, from_logits, greedy_correct
from ..results import HeadScores, check_model, refuse_tasks_as_scores
from ..tasks import Task, as_task_list
from .interventions import steer
from .selection import select_heads

__all__ = ["directions", "steering_sweep"]

MAX_ALPHAS = 64  # strengths per sweep at most: each runs every task twice (once per held-out half)


@torch.no_grad()
def _run(model, task: Task, heads, dirs=None, alpha=0.0):
    """Per item: greedy correctness (n,), metric (n,), last-prompt-position z of ``heads`` (n, k, d_head)."""
    enc = encode(task, model.tokenizer, "logprob", warn=False)
    check_length(model, enc)
    layers = sorted({l for l, _ in heads})
    grabbed = {}

    def keep(layer):
        def hook(z, hook):
            pos = enc.read_pos[:, :1].to(z.device)
            grabbed[layer] = gather_positions(z.flatten(2), pos).view(z.shape[0], *z.shape[2:]).float().cpu()
            return z

        return hook

    fwd = [(hooks.z(l), keep(l)) for l in layers]
    if dirs:
        with steer(model, dirs, alpha):
            logits = model.run_with_hooks(enc.tokens.to(device_of(model)), fwd_hooks=fwd)
    else:
        logits = model.run_with_hooks(enc.tokens.to(device_of(model)), fwd_hooks=fwd)
    at = gather_positions(logits, enc.read_pos.to(logits.device)).float().cpu()
    acts = torch.stack([grabbed[l][:, h] for l, h in heads], 1) if heads else None
    return greedy_correct(at, enc), from_logits(at, enc), acts


def directions(acts: torch.Tensor, correct: torch.Tensor, heads) -> dict:
    """(layer, head) → σ-scaled unit direction from wrong to right items; acts (n, k, d_head)."""
    right, wrong = acts[correct], acts[~correct]
    if len(right) == 0 or len(wrong) == 0:
        raise InputError("steering directions need items the model gets right and items it gets wrong")
    out = {}
    for j, head in enumerate(heads):
        d = right[:, j].mean(0) - wrong[:, j].mean(0)
        d = d / d.norm().clamp_min(1e-8)
        sigma = (acts[:, j] @ d).std()
        out[head] = (d * sigma).float().cpu().numpy()
    return out


def steering_sweep(
    model,
    scores: HeadScores,
    tasks,
    alphas=(1.0, 5.0, 10.0),
    k: int | None = None,
    seed: int = 0,
    by: str = "value",
    cross_model: bool = False,
    progress: bool = True,
):
    """Accuracy (greedy, held-out halves) and mean metric per task with its top heads steered by each α.

    Returns a DataFrame indexed by (task, alpha) with alpha = 0 the unsteered baseline, plus the k used.
    Tasks the model gets all right or all wrong on either half have no direction and are skipped (noted).
    ``cross_model``: a map of another model (``results.check_model``) is refused unless True.
    ``alphas``: distinct finite strengths, at most ``MAX_ALPHAS``; ``progress``: a step per forward pass.
    """
    import pandas as pd

    refuse_tasks_as_scores("steering_sweep", scores)
    require_bridge(model, "steering_sweep()")
    if not isinstance(scores, HeadScores):
        raise InputTypeError(f"steering_sweep() takes HeadScores as scores=, not {type(scores).__name__}")
    check_model("steering_sweep()", scores, model, cross_model)
    try:
        alphas = list(alphas)
    except TypeError:
        raise InputError(f"alphas must be a list of numbers, got {alphas!r}") from None
    bad = [a for a in alphas if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a)]
    if bad or not alphas:
        raise InputError(f"alphas must be a non-empty list of finite numbers, got {alphas!r}")
    if len(alphas) > MAX_ALPHAS:
        raise InputError(
            f"alphas holds {len(alphas)} strengths, at most {MAX_ALPHAS} (each runs every task twice): give fewer, "
            "e.g. alphas=(1, 5, 10)"
        )
    if len(set(alphas)) != len(alphas):
        raise InputError(f"alphas={alphas!r} repeats a strength (each runs every task twice): give each α once")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    task_list = as_task_list(tasks)
    missing = [t.name for t in task_list if t.name not in scores.tasks]
    if missing:
        raise InputError(f"tasks {missing} are not in the scores ({scores.tasks}): score them first")
    rows = []
    gen = np.random.default_rng(seed)
    bar = progress_bar(len(task_list) * (1 + 2 * len(alphas)), "steering", progress)  # a step per forward pass
    for task in task_list:
        heads = select_heads(scores, task.name, "elbow" if k is None else "top_k", k=k, by=by)
        correct, metric, acts = _run(model, task, heads)
        bar.update(1)
        half = np.zeros(len(task), dtype=bool)
        half[gen.permutation(len(task))[: len(task) // 2]] = True
        halves = [torch.as_tensor(half), torch.as_tensor(~half)]
        note = "" if heads else "no head selected (no positive score, or every score NaN): not steered"
        try:
            dirs = [directions(acts[~h], correct[~h], heads) for h in halves] if heads else []  # on the other half
        except ValueError:
            note = "all right or all wrong on a half: not steered"
        rows.append(
            {
                "task": task.name,
                "alpha": 0.0,
                "k": len(heads),
                "accuracy": correct.float().mean().item(),
                "metric": metric.mean().item(),
                "note": note,
            }
        )
        if note:
            bar.update(2 * len(alphas))  # its steered runs are skipped
            continue
        for alpha in alphas:
            acc, met = torch.zeros(len(task), dtype=torch.bool), torch.zeros(len(task))
            for h, d in zip(halves, dirs):
                c, m, _ = _run(model, task, [], d, alpha)
                acc[h], met[h] = c[h], m[h]
                bar.update(1)
            rows.append(
                {
                    "task": task.name,
                    "alpha": float(alpha),
                    "k": len(heads),
                    "accuracy": acc.float().mean().item(),
                    "metric": met.mean().item(),
                    "note": "",
                }
            )
    bar.close()
    return pd.DataFrame(rows).set_index(["task", "alpha"])
