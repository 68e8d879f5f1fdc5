"""Causal head gating (CHG, Nam et al. 2025, arXiv 2505.13737): ``score(..., method="gating")``.

Every head gets a soft gate G = sigmoid(g) that multiplies its ``hook_z``; the model's weights stay frozen
and only g (n_layers, n_heads) is fitted, with Adam, to

    loss = NLL ± lam · Σ_heads clip(g, ±CLIP)

NLL: the task's teacher-forced next-token cross-entropy on the gold answer (prompt + answer; per item the
mean over its answer tokens, then the mean over items). Three fits per seed, ``steps`` Adam steps each:

1. "free": lam = 0, from g = init + noise · N(0, 1) (``init`` 3 → gates ≈ 0.95, all open);
2. "keep" (G+), from the free solution, with −lam: pushed open, so only heads that hurt the task close;
3. "remove" (G−), from the free solution, with +lam: pushed closed, so only heads the task needs stay open.

Heads with both gates high are facilitating, both low interfering, diverging (G+ high, G− low) irrelevant.
The per-seed signed score is G+ + G− − 1 ∈ [−1, 1]: +1 facilitating, −1 interfering, ≈ 0 irrelevant.

The regulariser is the paper's Σ logit(G) with g clipped to ±CLIP, so a head the task pushes past the clip
is no longer held back (an interfering head can close fully in the keep fit). It is summed over heads —
not averaged — because each head's own trade-off is then NLL gradient vs. lam whatever the model's size:
in the remove fit a head stays open roughly when fully closing it would cost more than ~4 · lam nats per
answer token. Every step is a full-batch step (``batch_size`` only splits the forward passes, gradients
are accumulated), so seeds differ only by their initial noise on g, drawn from ``torch.Generator(seed)``:
a seed's result does not depend on the other seeds, nor (beyond float rounding) on ``batch_size``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch

from .. import cache as disk
from ..engine import hooks
from ..engine.forward import device_of, final_resid, unembed_at
from ..engine.progress import bar as progress_bar
from ..errors import InputError, InputTypeError
from ..metrics import Encoded, check_length, encode
from ..tasks import Task
from .base import Scorer, TaskResult, register
from .batching import item_batches

__all__ = ["DEFAULTS", "Gating", "MAX_SEEDS", "MAX_STEPS", "check_options", "gate_fits", "gate_scores", "taxonomy"]

DEFAULTS = {"seeds": [0, 1, 2], "steps": 100, "lr": 0.1, "lam": 0.05, "init": 3.0, "noise": 1.0}
CLIP = 5.0  # |g| beyond which the regulariser stops pushing (gates 0.0067 / 0.9933)
FITS = ("free", "keep", "remove")
# Bounds on the work (3 fits × seeds × steps forward + backward passes over the task). Adam moves g by about lr per
# step, so at the default lr 0.1 a gate crosses the regulariser's whole range (±CLIP) in ~100 steps, the default;
# 10,000 steps is 100 times that. 100 seeds resolve a head's Always / Any frequency to 1%.
MAX_STEPS = 10_000
MAX_SEEDS = 100
ROLES = ("facilitating", "interfering", "irrelevant")


def check_options(**options) -> dict:
    """Validate gating options and fill in ``DEFAULTS``; a plain JSON-serialisable dict.

    seeds: distinct non-negative ints (one fit triple each, at most ``MAX_SEEDS``); steps: Adam steps per fit (at
    most ``MAX_STEPS``); lr: Adam learning
    rate on g; lam: regulariser strength (> 0); init: mean initial g; noise: std of the initial noise on g.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown gating option(s) {unknown}: choose from {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **options}
    seeds = out["seeds"]
    if isinstance(seeds, Integral) and not isinstance(seeds, bool):
        seeds = [seeds]
    if isinstance(seeds, (list, tuple, range)) and len(seeds) > MAX_SEEDS:
        raise InputError(
            f"gating option seeds holds {len(seeds)} seeds, at most {MAX_SEEDS} (each is 3 fits of `steps` passes; "
            f"{MAX_SEEDS} resolve a head's frequency to 1%): give fewer, e.g. seeds=[0, 1, 2]"
        )
    if (
        not isinstance(seeds, (list, tuple, range))
        or not seeds
        or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise InputError(f"gating option seeds must be a non-empty list of distinct non-negative ints, got {seeds!r}")
    out["seeds"] = [int(s) for s in seeds]
    steps = out["steps"]
    if not isinstance(steps, Integral) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"gating option steps must be a positive int, got {steps!r}")
    if steps > MAX_STEPS:
        raise InputError(
            f"gating option steps={steps!r}: at most {MAX_STEPS} Adam steps per fit (a gate crosses its whole range "
            f"in ~100 at lr=0.1; each step is a forward and backward pass): use steps ≤ {MAX_STEPS}, or a larger lr"
        )
    out["steps"] = int(steps)
    for name, positive in (("lr", True), ("lam", True), ("init", False), ("noise", False)):
        value = out[name]
        ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (positive and value <= 0) or (name == "noise" and value < 0):
            need = "a positive" if positive else "a non-negative" if name == "noise" else "a finite"
            raise InputError(f"gating option {name} must be {need} number, got {value!r}")
        out[name] = float(value)
    return out


def taxonomy(keep: np.ndarray, remove: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Role of each head from its G+ (``keep``) and G− (``remove``) gates, any equal shapes → same-shape
    str array: "facilitating" (both ≥ threshold), "interfering" (both < threshold), else "irrelevant"."""
    keep, remove = np.asarray(keep), np.asarray(remove)
    hi_keep, hi_remove = keep >= threshold, remove >= threshold
    return np.where(hi_keep & hi_remove, ROLES[0], np.where(~hi_keep & ~hi_remove, ROLES[1], ROLES[2]))


@dataclass
class GateFits:
    """Fitted gates of one task. Gate arrays are (n_seeds, n_layers, n_heads) in [0, 1].

    free / keep / remove: gates after the lam = 0, G+ and G− fits
    nll: (n_seeds, 3) task NLL (mean answer-token cross-entropy) at the last step of each fit, in ``FITS`` order
    clean: (n_items,) per-item mean answer-token log-prob of the gold answer without gates
    """

    task: str
    seeds: list[int]
    options: dict
    free: np.ndarray
    keep: np.ndarray
    remove: np.ndarray
    nll: np.ndarray
    clean: np.ndarray

    def score(self) -> np.ndarray:
        """(n_seeds, n_layers, n_heads) signed scores G+ + G− − 1: +1 facilitating, −1 interfering."""
        return self.keep + self.remove - 1.0

    def taxonomy(self, threshold: float = 0.5) -> np.ndarray:
        """(n_layers, n_heads) roles from the seed-mean gates; see ``taxonomy``."""
        return taxonomy(self.keep.mean(0), self.remove.mean(0), threshold)


def gate_fits(
    model, task: Task, batch_size: int | None = None, progress: bool = True, cache=True, **options
) -> GateFits:
    """Fit free, keep and remove gates for every seed on ``task``; ``options`` as in ``check_options``.

    ``batch_size``: sequences per forward pass (default: as many as fit ``engine.budget.tokens`` tokens).
    ``cache``: as in ``score()`` (True: ``$HEADLAB_CACHE/scores``, a folder, or False): the fits are read from
    and written to ``{key}.fits.npz`` there (keyed like a score: weights, config, tokenizer, the task's ids,
    options), so a notebook rerun, or a call after ``score(method="gating")`` (which writes them too), reads
    them instead of refitting. Under ``cache=False``, or while hooks are on the model, they are always fitted.
    """
    if not isinstance(task, Task):
        raise InputTypeError(f"gate_fits() takes one Task, not {type(task).__name__}")
    opts = check_options(**options)
    path = _fits_path(model, task, opts, cache)
    if path is not None:
        fits = _load_fits(path, task, opts, (len(model.blocks), model.cfg.n_heads))
        if fits is not None:
            return fits
    enc = encode(task, model.tokenizer, "logprob", warn=False)
    check_length(model, enc)
    batches = item_batches(model, enc, batch_size)
    L, H = len(model.blocks), model.cfg.n_heads
    S = len(opts["seeds"])
    gates = {fit: np.zeros((S, L, H), dtype=np.float32) for fit in FITS}
    nll = np.zeros((S, len(FITS)), dtype=np.float32)
    grads_were = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    bar = progress_bar(S * len(FITS) * opts["steps"], f"{task.name} · gating", progress)
    try:
        with torch.no_grad():
            clean = torch.cat([-_item_nll(model, enc.subset(idx), None) for idx in batches]).cpu().numpy()
        for s, seed in enumerate(opts["seeds"]):
            gen = torch.Generator().manual_seed(seed)
            g0 = (opts["init"] + opts["noise"] * torch.randn((L, H), generator=gen)).to(device_of(model))
            free, nll[s, 0] = _fit(model, enc, batches, g0, 0.0, opts, bar)
            keep, nll[s, 1] = _fit(model, enc, batches, free, -opts["lam"], opts, bar)
            remove, nll[s, 2] = _fit(model, enc, batches, free, opts["lam"], opts, bar)
            for fit, g in zip(FITS, (free, keep, remove)):
                gates[fit][s] = torch.sigmoid(g).cpu().numpy()
    finally:
        bar.close()
        for p, was in zip(model.parameters(), grads_were):
            p.requires_grad_(was)
    fits = GateFits(
        task.name, opts["seeds"], opts, gates["free"], gates["keep"], gates["remove"], nll, clean.astype(np.float32)
    )
    if path is not None:
        _save_fits(path, fits)
    return fits


def _fits_path(model, task: Task, opts: dict, cache):
    """Where ``gate_fits`` keeps these fits on disk, or None (no cache, or hooks on the model)."""
    folder = disk.folder(cache)
    if folder is None or hooks.hooks_active(model):
        return None
    key = disk.task_key(model, task, {"method": "gating-fits", "options": opts})
    return folder / f"{key}.fits.npz"


def _save_fits(path, fits: GateFits) -> bool:
    meta = {"task": fits.task, "seeds": fits.seeds, "options": fits.options}
    arrays = {fit: getattr(fits, fit) for fit in FITS}
    return disk.write_or_warn(path, disk.npz_bytes(**arrays, nll=fits.nll, clean=fits.clean, meta=json.dumps(meta)))


def _load_fits(path, task: Task, opts: dict, shape: tuple[int, int]) -> GateFits | None:
    """The fits saved at ``path``, or None (none there; unreadable or of another shape: moved aside)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {name: f[name] for name in (*FITS, "nll", "clean")}
        want = (len(opts["seeds"]), *shape)
        if any(arrays[fit].shape != want for fit in FITS) or arrays["nll"].shape != (want[0], len(FITS)):
            raise InputError(f"gates of shape {arrays['free'].shape}, not {want}")
    except disk.READ_ERRORS as err:
        disk.move_aside(path, err)
        return None
    return GateFits(task.name, meta["seeds"], meta["options"], **arrays)


@register
class Gating(Scorer):
    name = "gating"
    summary = "causal head gating: soft gates fitted to keep / remove each head (Nam et al. 2025)"
    order = 40
    variants = {"3 seeds": {}}
    options = DEFAULTS
    option_help = {
        "seeds": "the fits' seeds, e.g. 0,1,2",
        "steps": "optimisation steps per fit",
        "lr": "Adam's learning rate",
        "lam": "the regulariser's strength",
        "init": "the gates' mean starting logit g",
        "noise": "the std of the starting noise on g",
    }
    uses_ablation = uses_metric = False  # fitted on the answer's next-token loss

    def check(self, options):
        return check_options(**options)

    def cost(self, size, n_layers, n_heads, options):
        """Per seed and fit, ``steps`` forward + backward passes over the prompts and answers."""
        return 3.0 * len(options["seeds"]) * len(FITS) * options["steps"] * size.n_items * size.n_tokens * n_layers

    def run(self, model, jobs, options, batch_size, progress):
        return [
            TaskResult(*gate_scores(model, job.task, batch_size, progress, job.folder or False, **options))
            for job in jobs
        ]


def gate_scores(model, task: Task, batch_size: int | None = None, progress: bool = True, cache=False, **options):
    """What ``score(method="gating")`` stores: per-seed scores (n_seeds, n_layers, n_heads) — the
    "examples" axis of ``HeadScores.per_example`` is the seeds — and the clean per-item mean answer-token
    log-prob (n_items,), whose mean becomes ``HeadScores.baseline``. ``cache``: score()'s folder, where the fits
    are kept for ``gate_fits``."""
    fits = gate_fits(model, task, batch_size=batch_size, progress=progress, cache=cache, **options)
    return fits.score().astype(np.float32), fits.clean


def _fit(model, enc: Encoded, batches, g0: torch.Tensor, lam: float, opts: dict, bar) -> tuple[torch.Tensor, float]:
    """``steps`` full-batch Adam steps on g (L, H) from ``g0``; the final g and the last step's NLL."""
    g = g0.clone().requires_grad_(True)
    opt = torch.optim.Adam([g], lr=opts["lr"])
    for _ in range(opts["steps"]):
        opt.zero_grad()
        total = 0.0
        with torch.enable_grad():
            for idx in batches:
                loss = _item_nll(model, enc.subset(idx), g).sum() / enc.n
                loss.backward()
                total += loss.item()
            if lam:
                (lam * g.clamp(-CLIP, CLIP).sum()).backward()
        opt.step()
        bar.update(1)
    return g.detach(), total


def _item_nll(model, enc: Encoded, g: torch.Tensor | None) -> torch.Tensor:
    """(b,) mean answer-token NLL per item, with every head's z scaled by sigmoid(g) (no gates if None)."""

    def gate(layer):
        return lambda z, hook: z * torch.sigmoid(g[layer]).to(z.device, z.dtype)[None, None, :, None]

    fwd = [] if g is None else [(hooks.z(l), gate(l)) for l in range(g.shape[0])]
    logits = unembed_at(model, final_resid(model, enc.tokens, fwd), enc.read_pos).float()
    logp = logits.log_softmax(-1).gather(-1, enc.target.to(logits.device)[..., None])[..., 0]
    mask = enc.read_mask.float().to(logits.device)
    return -(logp * mask).sum(-1) / mask.sum(-1)
