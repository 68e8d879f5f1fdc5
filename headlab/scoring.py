"""``score()``: tasks → cache → scorer → ``HeadScores``, the same way for every method.

The method is looked up in the registry (``headlab.scorers``); what differs between methods is what each
scorer declares (``scorers.base.Scorer``), never a branch here. Per task: the counterfactual fallbacks,
the encoding for the metric, then the disk cache (``headlab.cache``): hits are read, misses computed —
all in one call for a pooling scorer, else task by task, each saved as soon as it is done.
"""

from __future__ import annotations

import time
import warnings
import weakref
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import cache as disk
from . import scorers
from .engine.forward import final_resid
from .engine.hooks import hooks_active
from .engine.nnsight_engine import require_bridge
from .errors import InputError
from .metrics import METRICS, check_length, encode, prompt_ids
from .models import describe, load_model
from .results import HeadScores
from .scorers import TaskResult, TaskSize
from .scorers.ablation import rerun_tokens
from .tasks import as_task_list

__all__ = ["ABLATIONS", "Estimate", "estimate", "score", "throughput"]

ABLATIONS = ("zero", "mean", "resample")


def score(
    model=None,
    tasks=None,
    method: str = "attribution",
    ablation: str = "resample",
    metric: str = "logit_diff",
    batch_size: int | None = None,
    cache=True,
    progress: bool = True,
    **options,
) -> HeadScores:
    """Score every head for every task. ``tasks``: a Task, a list, or ``builtin()`` (default: all eight).

    ``method``: a registered scorer, ``headlab.scorers.names()`` (``docs/concepts/02-methods.md``).
    ``ablation``: "zero", "mean" or "resample" (methods that ablate); ``metric``: "logit_diff" or
    "logprob" (methods that read a metric).
    ``batch_size``: sequences per forward pass (default: the scorer's token budget).
    ``cache``: True (``$HEADLAB_CACHE/scores``), False, or a folder.
    ``options``: the method's own settings (``scorers.get(method).options``); part of the cache key and of
    ``params``.
    """
    plan = _plan(model, tasks, method, ablation, metric, batch_size, cache, progress, options)
    scorer, model, task_list, options = plan.scorer, plan.model, plan.tasks, plan.options
    jobs, notes, paths, info, results = plan.jobs, plan.notes, plan.paths, plan.info, list(plan.cached)
    todo = plan.todo()
    shape = (info.n_layers, info.n_heads)
    for i in todo:
        if scorer.uses_metric:
            jobs[i].enc = _encoded(model, jobs[i])
    passes = [todo] if scorer.pools or scorer.joint else [[i] for i in todo]
    for members in passes:
        if not members:
            continue
        outs = scorer.run(model, [jobs[i] for i in members], options, batch_size, progress)
        for i, out in zip(members, outs):
            if paths[i] is not None:
                disk.save_result(paths[i], out.per_example, out.baseline, out.params, out.verified)
                if jobs[i].partial is not None and jobs[i].partial.exists():
                    jobs[i].partial.unlink()
            results[i] = out
    for note in notes:
        warnings.warn(note, stacklevel=2)

    n_max = max(r.per_example.shape[0] for r in results)
    per_example = np.full((len(results), n_max, info.n_layers, info.n_heads), np.nan, dtype=np.float32)
    for t, r in enumerate(results):
        per_example[t, : r.per_example.shape[0]] = r.per_example
    extra = {}
    for r in results:  # a dict entry (e.g. keyed by task) merges across tasks; others are shared
        for k, v in r.params.items():
            extra[k] = {**extra[k], **v} if isinstance(v, dict) and isinstance(extra.get(k), dict) else v
    masks = [r.verified for r in results]
    verified = None
    if any(v is not None for v in masks):
        verified = np.stack([np.zeros(shape, dtype=bool) if v is None else v for v in masks])
    per_task = {job.task.name: {"ablation": job.ablation, "metric": job.metric} for job in jobs}
    params = {
        "ablation": ablation if scorer.uses_ablation else None,
        "metric": metric if scorer.uses_metric else None,
        "per_task": per_task,
        # which items each map is of: the explorer never puts other tasks of the same name behind it
        "task_hashes": {t.name: t.content_hash() for t in task_list},
        **options,
        **extra,
    }
    return HeadScores(
        values=np.stack([r.per_example.astype(np.float64).mean(0) for r in results]),
        tasks=[t.name for t in task_list],
        model=info,
        method=scorer.name,
        params=params,
        n_examples=[r.per_example.shape[0] for r in results],
        baseline=[r.baseline.mean() for r in results],
        per_example=per_example,
        notes=notes,
        verified=verified,
    )


def estimate(
    model=None,
    tasks=None,
    method: str = "attribution",
    ablation: str = "resample",
    metric: str = "logit_diff",
    cache=True,
    **options,
) -> Estimate:
    """How long ``score(model, tasks, method, ...)`` would take here, before it runs: the tasks it would
    compute (the rest are cached), their work (``Scorer.cost``) and seconds at this model's measured rate
    (one timed forward pass of the first task's prompts, measured once per model), plus the time of any work
    outside the passes (``Scorer.fit_seconds``: a probe's training, timed on a few steps)."""
    plan = _plan(model, tasks, method, ablation, metric, None, cache, False, options)
    info, tok = plan.info, plan.model.tokenizer
    todo = plan.todo()
    work, items = 0.0, 0
    for i in todo:
        job = plan.jobs[i]
        if job.metric is not None and job.ablation is not None:  # as the scorer will get it
            enc = _encoded(plan.model, job)
            length = float(enc.lengths.float().mean())
            size = TaskSize(enc.n, length, rerun_tokens(plan.model, enc, job.ablation), job.ablation)
        else:
            lengths = [len(prompt_ids(tok, it.prompt)) + len(prompt_ids(tok, it.answer)) for it in job.task.items]
            mean = float(np.mean(lengths))
            size = TaskSize(len(lengths), mean, mean)  # no exact re-runs: their length is the prompts'
        work += plan.scorer.cost(size, info.n_layers, info.n_heads, plan.options)
        items += size.n_items
    rate = throughput(plan.model, plan.jobs[todo[0]].task) if todo else 0.0
    fits = plan.scorer.fit_seconds(plan.model, items, len(todo), plan.options) if todo else 0.0
    return Estimate([plan.tasks[i].name for i in todo], work, (work / rate if rate else 0.0) + fits)


@dataclass
class Estimate:
    """``tasks``: those to compute (not cached); ``work``: their block-token passes; ``seconds`` at the
    measured rate, plus the scorer's work outside the passes (``Scorer.fit_seconds``)."""

    tasks: list[str]
    work: float
    seconds: float


_RATES = weakref.WeakKeyDictionary()  # model → {(dtype, device): block-token passes per second}: a timing, no map


def throughput(model, task) -> float:
    """Block-token passes per second of a no-grad forward pass over (up to 16 of) ``task``'s prompts, measured
    once per model, dtype and device."""
    require_bridge(model, "estimate()")
    param = next(model.parameters())
    rates = _RATES.setdefault(model, {})
    where = (param.dtype, param.device)
    if where not in rates:
        ids = [prompt_ids(model.tokenizer, it.prompt) for it in task.items[:16]]
        T = max(len(i) for i in ids)
        pad = model.tokenizer.pad_token_id or 0
        batch = torch.tensor([i + [pad] * (T - len(i)) for i in ids], device=next(model.parameters()).device)
        with torch.no_grad():
            final_resid(model, batch[:1])  # warm-up
            start = time.perf_counter()
            final_resid(model, batch)  # the blocks, as the scorers run them (no full-vocabulary logits)
            took = time.perf_counter() - start
        rates[where] = batch.numel() * model.cfg.n_layers / max(took, 1e-9)
    return rates[where]


@dataclass
class Plan:
    """What ``score()`` will do: per task its job, cache path and cached ``TaskResult`` (None: to compute)."""

    scorer: object
    model: object
    tasks: list
    options: dict
    jobs: list
    notes: list[str]
    paths: list
    cached: list
    info: object

    def todo(self) -> list[int]:
        return [i for i, r in enumerate(self.cached) if r is None]


def _plan(model, tasks, method, ablation, metric, batch_size, cache, progress, options) -> Plan:
    """Validate the arguments, load the model, make the jobs and read the cache."""
    scorer = scorers.get(method)
    if not isinstance(ablation, str) or ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}: choose from {ABLATIONS}")
    if not isinstance(metric, str) or metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}: choose from {METRICS}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be a positive int or None, got {batch_size!r}")
    if not isinstance(progress, (bool, int)):
        raise InputError(f"progress must be True or False, got {progress!r}")
    from transformer_lens.model_bridge import TransformerBridge

    options = scorer.check(options)
    model = model if isinstance(model, TransformerBridge) else load_model(model)
    engine = getattr(model, "engine", "bridge")
    if engine not in scorer.engines:
        able = [name for name in scorers.names() if engine in scorers.get(name).engines]
        raise InputError(
            f"method {scorer.name!r} does not run on the {engine} engine: use one of {able}, or load the model with "
            "engine='bridge'"
        )
    if tasks is None:
        from .tasks import builtin

        tasks = builtin()
    task_list = as_task_list(tasks)
    if any(m.training for m in model.modules()):
        raise InputError(
            "the model is in training mode (dropout on: every run would give another map): call model.eval() first"
        )
    info = replace(describe(model), fingerprint=disk.model_fingerprint(model))
    folder = disk.folder(cache)
    if folder is not None and hooks_active(model):
        warnings.warn(
            "score(): hooks are active on the model (inside mask_heads, steer or your own): the disk cache "
            "is neither read nor written for this call",
            stacklevel=3,
        )
        folder = None

    jobs, notes, paths = [], [], []
    everything = [disk.ids_fingerprint(model.tokenizer, t) for t in task_list] if scorer.joint else None
    for task in task_list:
        job, job_notes = scorer.job(task, ablation, metric)
        notes += job_notes
        settings = {
            "method": scorer.name,
            "ablation": job.ablation,
            "metric": job.metric,
            **({"options": options} if options else {}),
            **({"tasks": everything} if everything else {}),
        }
        key = disk.task_key(model, task, settings, info.fingerprint)
        paths.append(folder / f"{key}.npz" if folder else None)
        job.folder = folder
        if folder:
            job.partial = folder / f"{key}.partial.npz"
        jobs.append(job)

    shape = (info.n_layers, info.n_heads)
    cached = [disk.load_result(p, shape) if p is not None else None for p in paths]
    cached = [TaskResult(*r) if r is not None else None for r in cached]
    if scorer.joint and any(r is None for r in cached):
        cached = [None] * len(jobs)
    return Plan(scorer, model, task_list, options, jobs, notes, paths, cached, info)


def _encoded(model, job):
    """The job's task encoded for its metric, checked to fit the model's positions; resampling keeps the
    items whose counterfactual has its prompt's token length and differs from it, and warns of the others."""
    enc = encode(job.task, model.tokenizer, job.metric, warn=job.ablation == "resample")  # only it skips
    check_length(model, enc)
    if job.ablation == "resample":
        keep = torch.nonzero(enc.cf_ok).flatten()
        if len(keep) == 0:
            tok = model.tokenizer
            same = sum(prompt_ids(tok, it.counterfactual) == prompt_ids(tok, it.prompt) for it in job.task.items)
            raise InputError(
                f"task {job.task.name!r}: no usable counterfactual ({same} of {enc.n} identical to their prompt, "
                f"{enc.n - same} of another token length); use ablation='mean' or fix the counterfactuals"
            )
        enc = enc.subset(keep)
    return enc
