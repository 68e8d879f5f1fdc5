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
from ..metrics import check_length, encode, from_logits, greedy_correct
from ..results import HeadScores, refuse_tasks_as_scores
from ..tasks import Task, as_task_list
from .interventions import steer
from .selection import select_heads


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
        raise ValueError("steering directions need items the model gets right and items it gets wrong")
    out = {}
    for j, head in enumerate(heads):
        d = right[:, j].mean(0) - wrong[:, j].mean(0)
        d = d / d.norm().clamp_min(1e-8)
        sigma = (acts[:, j] @ d).std()
        out[head] = (d * sigma).float().cpu().numpy()
    return out


def steering_sweep(
    model, scores: HeadScores, tasks, alphas=(1.0, 5.0, 10.0), k: int | None = None, seed: int = 0, by: str = "value"
):
    """Accuracy (greedy, held-out halves) and mean metric per task with its top heads steered by each α.

    Returns a DataFrame indexed by (task, alpha) with alpha = 0 the unsteered baseline, plus the k used.
    Tasks the model gets all right or all wrong on either half have no direction and are skipped (noted).
    """
    import pandas as pd

    from ..models import describe

    refuse_tasks_as_scores("steering_sweep", scores)
    if not isinstance(scores, HeadScores):
        raise TypeError(f"steering_sweep() takes HeadScores as scores=, not {type(scores).__name__}")
    info = describe(model)
    if (info.n_layers, info.n_heads) != scores.shape[1:]:
        raise ValueError(
            f"scores are of a {scores.shape[1]} × {scores.shape[2]} model ({scores.model.name}) but the model is "
            f"{info.n_layers} × {info.n_heads}: steer with the map of this model"
        )
    try:
        alphas = list(alphas)
    except TypeError:
        raise ValueError(f"alphas must be a list of numbers, got {alphas!r}") from None
    bad = [a for a in alphas if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a)]
    if bad or not alphas:
        raise ValueError(f"alphas must be a non-empty list of finite numbers, got {alphas!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    task_list = as_task_list(tasks)
    missing = [t.name for t in task_list if t.name not in scores.tasks]
    if missing:
        raise ValueError(f"tasks {missing} are not in the scores ({scores.tasks}): score them first")
    rows = []
    gen = np.random.default_rng(seed)
    for task in task_list:
        heads = select_heads(scores, task.name, "elbow" if k is None else "top_k", k=k, by=by)
        correct, metric, acts = _run(model, task, heads)
        half = np.zeros(len(task), dtype=bool)
        half[gen.permutation(len(task))[: len(task) // 2]] = True
        halves = [torch.as_tensor(half), torch.as_tensor(~half)]
        try:
            dirs = [directions(acts[~h], correct[~h], heads) for h in halves]  # fitted on the other half
        except ValueError:
            rows.append(
                {
                    "task": task.name,
                    "alpha": 0.0,
                    "k": len(heads),
                    "accuracy": correct.float().mean().item(),
                    "metric": metric.mean().item(),
                    "note": "all right or all wrong on a half: not steered",
                }
            )
            continue
        rows.append(
            {
                "task": task.name,
                "alpha": 0.0,
                "k": len(heads),
                "accuracy": correct.float().mean().item(),
                "metric": metric.mean().item(),
                "note": "",
            }
        )
        for alpha in alphas:
            acc, met = torch.zeros(len(task), dtype=torch.bool), torch.zeros(len(task))
            for h, d in zip(halves, dirs):
                c, m, _ = _run(model, task, [], d, alpha)
                acc[h], met[h] = c[h], m[h]
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
    return pd.DataFrame(rows).set_index(["task", "alpha"])
