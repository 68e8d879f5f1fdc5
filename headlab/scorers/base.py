"""The scorer interface, and the registry that ``score()``, the explorer, the CLI and the docs read.

A *scorer* turns tasks into one number per head and item: ``per_example`` (n, n_layers, n_heads) and a
``baseline`` (n,) (the clean metric, or what the method measures without intervention). ``score()`` does
everything around it the same way for every method — validation, counterfactual fallbacks, encoding, the
disk cache, assembling ``HeadScores`` — so a new method is one new file in ``headlab/scorers/`` with a
subclass of ``Scorer`` decorated with ``@register``. It declares:

- ``name``, ``summary``, ``order`` (its place in method lists) and ``variants`` (the explorer's entries:
  label → the ``score()`` keywords that pick the variant);
- ``options``: its own keyword options with their defaults, validated by ``check`` (one-line ValueError), and
  ``option_help``: one line per option, which the CLI shows beside the flag it makes of each (``--steps``);
- ``uses_ablation`` / ``uses_metric``: whether ``score(ablation=, metric=)`` apply. Where they do, a task
  without counterfactuals falls back (``FALLBACKS``: logit_diff → logprob, resample → mean) with a note,
  the scorer gets the task encoded (``Job.enc``, ``metrics.encode``) and resampling keeps only the items
  whose counterfactual has its prompt's token length;
- ``pools``: ``run`` takes every task in one call (short tasks fill a pass together); else one call per
  task. Every result is cached as soon as ``run`` hands it over, so a pooled ``run`` that yields its tasks one
  by one (``verified``) keeps those it finished when it is interrupted;
- ``joint``: a task's result depends on the whole set of tasks (a probe's classes): cached per set;
- ``engines``: where it runs: "bridge" (TransformerLens), and for some "nnsight" and "ndif"
  (``engine.nnsight_engine``); ``score()`` refuses the others in one line;
- ``cost``: its work for a task, in block-token passes (one block run on one token = 1; a backward pass
  counts twice its forward), which ``scoring.estimate`` turns into seconds with a measured rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..metrics import Encoded
from ..tasks import Task

__all__ = ["ABLATION_VARIANTS", "Job", "REGISTRY", "Scorer", "TaskResult", "TaskSize", "register"]

FALLBACKS = {"metric": ("logit_diff", "logprob"), "ablation": ("resample", "mean")}
ABLATION_VARIANTS = {a: {"ablation": a} for a in ("resample", "zero", "mean")}  # explorer entries of ablating methods


@dataclass
class Job:
    """One task to score, with the ablation and metric it gets (None where the scorer uses neither)."""

    task: Task
    ablation: str | None
    metric: str | None
    enc: Encoded | None = None  # the task encoded for ``metric`` (scorers that use a metric)
    partial: Path | None = None  # unfinished work: a sweep to resume, NDIF jobs to fetch (None: no cache)
    folder: Path | None = None  # the cache folder of this score() call (None: cache off or hooks active)


@dataclass(frozen=True)
class TaskSize:
    """A task's size for ``Scorer.cost``: its items, their mean length in tokens, the mean positions per item
    that an exact re-run computes (``scorers.ablation.rerun_tokens``: resample skips the shared prefix), and the
    ablation its job replaces heads with (None: a method without one)."""

    n_items: int
    n_tokens: float
    rerun_tokens: float
    ablation: str | None = None


@dataclass
class TaskResult:
    """One task's scores: per_example (n, n_layers, n_heads) (n: items, or gating's seeds), baseline (m,) whose
    mean is the task's baseline (the clean metric per item, or a probe's class accuracy), scorer-specific
    params, and ``verified`` (n_layers, n_heads) bool: the heads holding exact values among estimates (None:
    a method that does not mix them)."""

    per_example: np.ndarray
    baseline: np.ndarray
    params: dict = field(default_factory=dict)
    verified: np.ndarray | None = None


class Scorer:
    name: str = ""
    summary: str = ""
    order: int = 100
    variants: dict = {}
    options: dict = {}
    option_help: dict = {}  # option → what it sets, in a few words (the CLI's --help)
    uses_ablation: bool = True
    uses_metric: bool = True
    pools: bool = False
    joint: bool = False
    engines: tuple[str, ...] = ("bridge",)  # the engines it runs on (``load_model(engine=)``)

    def check(self, options: dict) -> dict:
        """Validated options with defaults filled in (plain JSON: they enter the cache key and ``params``)."""
        if options:
            raise InputError(f"method {self.name!r} takes no options, got {sorted(options)}")
        return {}

    def job(self, task: Task, ablation: str, metric: str) -> tuple[Job, list[str]]:
        """The task's job after the counterfactual fallbacks, and a note for each fallback taken."""
        ablation = ablation if self.uses_ablation else None
        metric = metric if self.uses_metric else None
        notes = []
        if not task.has_counterfactuals:
            have = sum(item.has_counterfactual for item in task.items)
            why = f"only {have} of {len(task)} items have a counterfactual" if have else "no counterfactuals"
            if metric == FALLBACKS["metric"][0]:
                metric = FALLBACKS["metric"][1]
                notes.append(f"{task.name}: {why}, metric logit_diff → logprob")
            if ablation == FALLBACKS["ablation"][0]:
                ablation = FALLBACKS["ablation"][1]
                notes.append(f"{task.name}: {why}, resample → mean ablation")
        return Job(task, ablation, metric), notes

    def cost(self, size: TaskSize, n_layers: int, n_heads: int, options: dict) -> float:
        """Block-token passes to score one task of ``size``: by default a clean and an ablated forward pass and
        one backward (attribution-like)."""
        return 4.0 * size.n_items * size.n_tokens * n_layers

    def fit_seconds(self, model, n_items: int, n_classes: int, options: dict) -> float:
        """Seconds spent outside the model's passes (e.g. training probes) for ``n_items`` items of
        ``n_classes`` tasks, measured here: none by default."""
        return 0.0

    def run(
        self, model, jobs: list[Job], options: dict, batch_size: int | None, progress: bool
    ) -> Iterable[TaskResult]:
        """One TaskResult per job, in order: a list, or an iterator that yields each as it is done."""
        raise NotImplementedError


REGISTRY: dict[str, Scorer] = {}


def register(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator: add a scorer to the registry under its ``name``."""
    if not cls.name or cls.name in REGISTRY:
        raise InputError(f"scorer name {cls.name!r} is empty or taken")
    REGISTRY[cls.name] = cls()
    return cls
