"""Probing scorers (Cognitive Mirrors, arXiv 2512.10978): which heads' activations tell the tasks apart.

Every item is run teacher-forced on prompt + gold answer; each head's ``hook_z`` is pooled over the answer
tokens ("mean", "first" or "last"), giving x (N, L, H, d_head) and the item's task as its class.

probe="mlp" (the paper's probe): a head's feature is its own vector concatenated with its layer's mean
  vector, projected by one shared linear map (2·d_head → 64); the projections of all heads feed an MLP
  (→ 512, ReLU, dropout 0.3) to the classes; cross-entropy, AdamW lr 1e-4. Importance of head (l, h) for
  class c on item i = Σ_k ∂logit_c/∂p_{l,h,k} · p_{l,h,k} (grad × activation on the projected features),
  averaged over the items of class c. Signed, not normalised.
probe="logistic": per head and class a one-vs-rest logistic regression (class-balanced); the score is the
  held-out Youden J = TPR − FPR (0 = chance, 1 = perfect), a second, directly checkable map.

Both are cross-fitted: items are split into stratified folds, each fold is scored by probes trained on the
others, so every importance and accuracy is computed on held-out items only. Seeds are fixed: results are
deterministic.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from torch import nn

from ..engine import hooks, nnsight_engine
from ..engine.forward import final_resid
from ..engine.ndif import Requests
from ..engine.nnsight_engine import ENGINES
from ..engine.progress import bar as progress_bar
from ..engine.progress import each
from ..errors import InputError
from ..metrics import answer_ids, max_positions, prompt_ids
from ..tasks import Task
from .base import Scorer, TaskResult, register

__all__ = [
    "DEFAULTS",
    "MAX_EPOCHS",
    "Probe",
    "check_options",
    "head_activations",
    "pooled_z",
    "probe_scores",
    "stratified_folds",
]

POOLS = ("mean", "first", "last")
PROBES = ("mlp", "logistic")
LOGISTIC_STEPS = 300  # Adam steps of each fold's one-vs-rest logistic probes
_STEP_TIMES = weakref.WeakKeyDictionary()  # model → {(probe, n_train, C, L, H, d): (set-up, step) s}: timings
# Epochs at most: 16 s a fold at the default 20 on the embedded model's 384 CogQA items (held-out accuracy already
# 99.7%; docs/history/measured-2026.md), so 1,000 is about 13 minutes a fold, over an hour for five folds.
MAX_EPOCHS = 1000
DEFAULTS = {"probe": "mlp", "pool": "mean", "folds": 5, "seed": 0, "epochs": 20, "lr": 1e-4, "max_answer_tokens": 16}


@dataclass
class HeadActivations:
    """x (N, L, H, d_head) float32: pooled per-head z; y (N,) class index into ``classes``;
    item (N,) the item's index within its task."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    item: torch.Tensor


def head_activations(
    model,
    tasks: list[Task],
    pool: str = "mean",
    max_answer_tokens: int = 16,
    batch_size: int | None = None,
    progress: bool = True,
) -> HeadActivations:
    """Pooled ``hook_z`` of every head on every item (prompt + at most ``max_answer_tokens`` answer tokens). On the
    nnsight engine each batch is one request that pools where the model runs (``nnsight_engine.pooled_z``)."""
    if pool not in POOLS:
        raise InputError(f"unknown pool {pool!r}: choose from {POOLS}")
    tok = model.tokenizer
    rows, spans, ys, items = [], [], [], []
    for c, task in enumerate(tasks):
        for i, it in enumerate(task.items):
            p, a = prompt_ids(tok, it.prompt), answer_ids(tok, it.answer)[:max_answer_tokens]
            if not a:
                raise InputError(f"task {task.name!r}: item {i} answer {it.answer!r} tokenizes to nothing")
            rows.append(p + a)
            spans.append((len(p), len(p) + len(a)))
            ys.append(c)
            items.append(i)
    n_ctx = max_positions(model)
    too_long = [j for j, r in enumerate(rows) if n_ctx is not None and len(r) > n_ctx]
    if too_long:
        j = too_long[0]
        task = tasks[ys[j]].name
        raise InputError(
            f"task {task!r}: item {items[j]} is {len(rows[j])} tokens (prompt + at most {max_answer_tokens} answer "
            f"tokens) but the model takes at most {n_ctx} positions (cfg.n_ctx); {len(too_long)} item(s) are too "
            "long: shorten or drop them"
        )
    requests = Requests(model) if getattr(model, "engine", "bridge") != "bridge" else None
    order = np.argsort([len(r) for r in rows], kind="stable")  # similar lengths share a batch: less padding
    per_batch = batch_size or max(1, 8192 // max(len(r) for r in rows))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    x = None
    for s in each(range(0, len(rows), per_batch), "head activations", progress):
        idx = order[s : s + per_batch]
        T = max(len(rows[i]) for i in idx)
        tokens = torch.full((len(idx), T), pad, dtype=torch.long)
        weight = torch.zeros(len(idx), T)
        for j, i in enumerate(idx):
            tokens[j, : len(rows[i])] = torch.tensor(rows[i])
            lo, hi = spans[i]
            if pool == "mean":
                weight[j, lo:hi] = 1.0 / (hi - lo)
            else:
                weight[j, lo if pool == "first" else hi - 1] = 1.0
        if requests is not None:
            block = torch.as_tensor(nnsight_engine.pooled_z(model, tokens, weight, requests, f"head activations {s}"))
        else:
            block = pooled_z(model, tokens, weight)
        if x is None:
            x = torch.zeros((len(rows), *block.shape[1:]))
        x[torch.as_tensor(idx)] = block
    return HeadActivations(x, torch.tensor(ys), [t.name for t in tasks], torch.tensor(items))


def pooled_z(model, tokens: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Every head's ``hook_z`` pooled over each row's positions by ``weight`` (b, T) in a no-grad bridge run of
    right-padded ``tokens`` (b, T) → (b, L, H, d_head) float32 (``nnsight_engine.pooled_z`` on the nnsight engine)."""
    L = model.cfg.n_layers
    pooled = [None] * L

    def keep(layer):
        def hook(z, hook):
            pooled[layer] = torch.einsum("bt,bthd->bhd", weight.to(z.device), z.float()).cpu()
            return z

        return hook

    with torch.no_grad():
        final_resid(model, tokens, [(hooks.z(l), keep(l)) for l in range(L)])
    return torch.stack(pooled, 1)


def stratified_folds(y: torch.Tensor, folds: int, seed: int) -> np.ndarray:
    """(N,) fold index per item: each class's items shuffled (seeded) and dealt round-robin."""
    y = np.asarray(y)
    counts = np.bincount(y)
    if folds < 2 or counts[counts > 0].min() < folds:
        raise InputError(
            f"folds={folds} needs ≥ 2 folds and ≥ {folds} items in every class "
            f"(smallest class has {counts[counts > 0].min()}): lower folds or add items"
        )
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = np.arange(len(members)) % folds
    return fold


def _standardize(train: torch.Tensor, *others: torch.Tensor):
    mu, sd = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(t - mu) / sd for t in (train, *others)]


class CogProbe(nn.Module):
    """The paper's probe. x (N, L, H, d) → projected head features (N, L, H, proj) → class logits (N, C)."""

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        d_head: int,
        n_classes: int,
        proj: int = 64,
        hidden: int = 512,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.project = nn.Linear(2 * d_head, proj)
        self.mlp = nn.Sequential(
            nn.Linear(n_layers * n_heads * proj, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        layer_mean = x.mean(2, keepdim=True).expand_as(x)
        return self.project(torch.cat([x, layer_mean], -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(x).flatten(1))


def _fit_mlp(x, y, n_classes, epochs, lr, seed, advance=None):
    """The MLP probe trained ``epochs`` epochs (batches of 32); ``advance()`` after each epoch (progress)."""
    torch.manual_seed(seed)
    _, L, H, d = x.shape
    probe = CogProbe(L, H, d, n_classes)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    batch = 32
    probe.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for s in range(0, len(y), batch):
            idx = perm[s : s + batch]
            loss = nn.functional.cross_entropy(probe(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if advance is not None:
            advance()
    return probe.eval()


def grad_x_activation(probe: CogProbe, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item: importance of every head for the item's own class (N, L, H), and the predicted class (N,)."""
    feats = probe.features(x).detach().requires_grad_(True)
    logits = probe.mlp(feats.flatten(1))
    logits.gather(1, y[:, None]).sum().backward()
    return (feats.grad * feats).sum(-1).detach(), logits.argmax(1).detach()


def _mlp_crossfit(acts: HeadActivations, fold, epochs, lr, seed, progress):
    n_classes = len(acts.classes)
    importance = torch.zeros(acts.x.shape[:3])
    pred = torch.zeros(len(acts.y), dtype=torch.long)
    folds = int(fold.max()) + 1
    bar = progress_bar(folds * epochs, f"probe folds · {epochs} epochs", progress)  # a step per fold and epoch
    try:
        for f in range(folds):
            tr, te = torch.as_tensor(fold != f), torch.as_tensor(fold == f)
            x_tr, x_te = _standardize(acts.x[tr], acts.x[te])
            with torch.random.fork_rng():
                probe = _fit_mlp(x_tr, acts.y[tr], n_classes, epochs, lr, seed + f, bar.update)
            importance[te], pred[te] = grad_x_activation(probe, x_te, acts.y[te])
    finally:
        bar.close()
    return importance, pred


def _fit_logistic(x, y, n_classes, steps=LOGISTIC_STEPS, lr=0.05, l2=1e-3):
    """One-vs-rest logistic regression per head, all heads at once. x (N, L, H, d) → W (L, H, d, C), b (L, H, C)."""
    _, L, H, d = x.shape
    w = torch.zeros(L, H, d, n_classes, requires_grad=True)
    b = torch.zeros(L, H, n_classes, requires_grad=True)
    target = nn.functional.one_hot(y, n_classes).float()[:, None, None, :].expand(-1, L, H, -1)
    pos = target[:, 0, 0].sum(0)
    pos_weight = (len(y) - pos) / pos.clamp_min(1)  # class-balanced: threshold 0 ≈ balanced accuracy
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        logits = torch.einsum("nlhd,lhdc->nlhc", x, w) + b
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        loss = loss + l2 * (w**2).sum() / (L * H)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach(), b.detach()


def _logistic_crossfit(acts: HeadActivations, fold, progress):
    """Held-out one-vs-rest decisions: (N, L, H, C) bool (item predicted in class c by head (l, h))."""
    n_classes = len(acts.classes)
    says = torch.zeros((*acts.x.shape[:3], n_classes), dtype=torch.bool)
    for f in each(range(fold.max() + 1), "logistic folds", progress):
        tr, te = torch.as_tensor(fold != f), torch.as_tensor(fold == f)
        x_tr, x_te = _standardize(acts.x[tr], acts.x[te])
        with torch.enable_grad():
            w, b = _fit_logistic(x_tr, acts.y[tr], n_classes)
        says[te] = (torch.einsum("nlhd,lhdc->nlhc", x_te, w) + b) > 0
    return says


def check_options(**options) -> dict:
    """Fill the probe's defaults; one-line ValueError for unknown or bad options."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown probe option(s) {unknown}: choose from {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    if opts["probe"] not in PROBES:
        raise InputError(f"unknown probe {opts['probe']!r}: choose from {PROBES}")
    if opts["pool"] not in POOLS:
        raise InputError(f"unknown pool {opts['pool']!r}: choose from {POOLS}")
    for name in ("folds", "epochs", "max_answer_tokens"):
        if isinstance(opts[name], bool) or not isinstance(opts[name], Integral) or opts[name] < 1:
            raise InputError(f"probe option {name} must be a positive int, got {opts[name]!r}")
        opts[name] = int(opts[name])
    if opts["epochs"] > MAX_EPOCHS:
        raise InputError(
            f"probe option epochs={opts['epochs']}: at most {MAX_EPOCHS} (about 13 minutes a fold on the embedded "
            f"model; the default is {DEFAULTS['epochs']}): use epochs ≤ {MAX_EPOCHS}"
        )
    if opts["folds"] < 2:
        raise InputError(f"probe option folds must be ≥ 2 (cross-fitting needs a held-out fold), got {opts['folds']}")
    seed = opts["seed"]
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise InputError(f"probe option seed must be a non-negative int, got {seed!r}")
    opts["seed"] = int(seed)
    lr = opts["lr"]
    if isinstance(lr, bool) or not isinstance(lr, Real) or not math.isfinite(lr) or lr <= 0:
        raise InputError(f"probe option lr must be a positive number, got {lr!r}")
    opts["lr"] = float(lr)
    return opts


@register
class Probe(Scorer):
    name = "probe"
    summary = "held-out probes of each head's activations telling the tasks apart (Cognitive Mirrors)"
    order = 30
    variants = {"mlp": {"probe": "mlp"}, "logistic": {"probe": "logistic"}}
    options = DEFAULTS
    option_help = {
        "probe": "mlp (the paper's) or logistic (one regression per head)",
        "pool": "mean, first or last of a head's activations over the answer's tokens",
        "folds": "cross-fitting folds",
        "seed": "the folds' and the fit's seed",
        "epochs": "MLP training epochs",
        "lr": "MLP learning rate",
        "max_answer_tokens": "answer tokens pooled at most",
    }
    uses_ablation = uses_metric = False  # classifies tasks from activations: no ablation, no metric
    joint = True  # the tasks are the classes: each result depends on all of them
    engines = ENGINES

    def check(self, options):
        return check_options(**options)

    def cost(self, size, n_layers, n_heads, options):
        """One forward pass to read the heads (the probes' training is ``fit_seconds``)."""
        return 1.0 * size.n_items * size.n_tokens * n_layers

    def fit_seconds(self, model, n_items, n_classes, options):
        """The cross-fitted probes' training time here: optimiser steps timed on random activations of the
        real shape (…, L, H, d_head) — a 1-step and a 4-step fit, so their difference is 3 steps without the
        fit's set-up — times the steps all folds take (logistic: ``LOGISTIC_STEPS`` per fold; MLP: ``epochs`` ×
        batches of 32). Per-step overhead dominates these small tensors, which a pass-timed rate does not see
        (measured: docs/history/measured-2026.md, the cost model)."""
        opts = check_options(**options)
        L, H, d = int(model.cfg.n_layers), int(model.cfg.n_heads), int(model.cfg.d_head)
        n_train, C = max(2, n_items - n_items // opts["folds"]), max(2, n_classes)
        if opts["probe"] == "logistic":
            x = torch.randn(n_train, L, H, d)
            fit = lambda steps: _fit_logistic(x, torch.arange(n_train) % C, C, steps=steps)  # noqa: E731
            steps = LOGISTIC_STEPS
        else:
            x = torch.randn(128, L, H, d)  # one epoch over 32 · s items is s steps of batch 32
            fit = lambda steps: _fit_mlp(x[: 32 * steps], torch.arange(32 * steps) % C, C, 1, opts["lr"], 0)  # noqa: E731
            steps = opts["epochs"] * -(-n_train // 32)
        times, key = _STEP_TIMES.setdefault(model, {}), (opts["probe"], n_train, C, L, H, d)
        if key not in times:  # timed once per model and shape, as ``scoring.throughput`` times its pass
            with torch.enable_grad():
                took = []
                for s in (1, 4):
                    start = time.perf_counter()
                    fit(s)
                    took.append(time.perf_counter() - start)
            per_step = max(took[1] - took[0], 0.0) / 3
            times[key] = (max(took[0] - per_step, 0.0), per_step)
        setup, per_step = times[key]
        return opts["folds"] * (setup + steps * per_step)

    def run(self, model, jobs, options, batch_size, progress):
        return probe_scores(model, [job.task for job in jobs], batch_size, progress, **options)


def probe_scores(
    model, tasks: list[Task], batch_size: int | None = None, progress: bool = True, **options
) -> list[TaskResult]:
    """``score(method="probe")``: one class per task (≥ 2 tasks); per task c, per_example (n_c, L, H) holds
    each held-out item's own importance (logistic: its TPR − FPR term), baseline the MLP's held-out recall of
    the class (logistic: the best single head's held-out balanced accuracy). ``params`` records the MLP's
    held-out ``accuracy`` (chance = 1/C; NaN for logistic) and every class's accuracy."""
    opts = check_options(**options)
    if len(tasks) < 2:
        raise InputError("probing needs at least two tasks (the classes): pass several tasks, e.g. builtin()")
    smallest = min(tasks, key=len)
    if len(smallest) < opts["folds"]:
        raise InputError(
            f"folds={opts['folds']} needs ≥ {opts['folds']} items in every task, but {smallest.name!r} has "
            f"{len(smallest)}: lower folds or add items"
        )
    acts = head_activations(model, tasks, opts["pool"], opts["max_answer_tokens"], batch_size, progress)
    fold = stratified_folds(acts.y, opts["folds"], opts["seed"])
    C = len(tasks)
    y = acts.y.numpy()
    per_class = []
    if opts["probe"] == "mlp":
        importance, pred = _mlp_crossfit(acts, fold, opts["epochs"], opts["lr"], opts["seed"], progress)
        recall = np.array([(pred.numpy()[y == c] == c).mean() for c in range(C)])
        accuracy = float((pred.numpy() == y).mean())
        per_class = [importance[torch.as_tensor(y == c)].numpy().astype(np.float32) for c in range(C)]
    else:
        says = _logistic_crossfit(acts, fold, progress).numpy()  # (N, L, H, C)
        fpr = np.stack([says[y != c, ..., c].mean(0) for c in range(C)])  # (C, L, H)
        per_class = [(says[y == c, ..., c] - fpr[c]).astype(np.float32) for c in range(C)]  # mean = TPR − FPR
        best = np.array([pe.mean(0).max() for pe in per_class])
        recall, accuracy = (best + 1) / 2, float("nan")  # best single head's balanced accuracy per class
    params = {
        "accuracy": accuracy,
        "chance": 1.0 / C,
        "class_accuracy": {t.name: float(r) for t, r in zip(tasks, recall)},
    }
    return [TaskResult(pe, np.array([r]), params) for pe, r in zip(per_class, recall)]
