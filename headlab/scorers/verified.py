"""Screen, then verify: ``score(method="verified", k=20, candidates=None, steps=[1, 2])``.

Exact ablation is the truth for one head, and it costs one re-run per head; attribution scores every head in
one pass but is wrong exactly where the metric bends. Practitioners screen with attribution and patch the
candidates for real — this is that, in one call, per task:

1. **Screen**: attribution (``steps`` integrated-gradient points) scores every head; its per-item values give
   each head a 95% interval, mean ± 1.96 · standard error. By default two screens, plain attribution and 2-point
   integrated gradients (``steps=[1, 2]``: one run, m = 1's point is m = 2's last), a second opinion where the
   metric bends — each screen's candidates are verified, and the map's estimates are the first's; ``steps=m``:
   one screen.
2. **Candidates**: every head that could belong to the top ``k`` (signed, as ``HeadScores.top``) by the
   screen's own uncertainty — its interval reaches the k-th highest score — and the top ``k`` by |score| (a
   strong head whose sign attribution got wrong is still verified); the union over the screens. Or, with
   ``candidates=K``, exactly K heads: the top K by |score|, a head ranked by its best rank in any screen.
3. **Verify**: exact ablation (``ablation.ablate`` on those heads only, the same batches as a full sweep; the
   candidates of several layers share one joined pass; on the nnsight engine ``ablation.traced_ablation`` of
   those heads, after a screen of one request per task) re-scores them; the map holds their exact values,
   ``HeadScores.verified`` marks them, and every other head keeps its estimate.
4. **Disagreements**: each verified head whose sign flipped or whose rank moved by more than
   ``RANK_MOVE`` between the screen and the verified map, in ``params["disagreements"]`` and
   ``HeadScores.disagreements()``.

Verified values equal a full exact sweep's: bit for bit on the tiny test models, and to float rounding on the
embedded model (1.4e-6: a pass that stacks fewer heads sums in another order), both tested.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..engine.nnsight_engine import ENGINES
from ..errors import InputError
from .ablation import ablate, sweep_cost, traced_ablation
from .attribution import MAX_STEPS, attribute_screens, check_steps, path_cost, path_points, traced_attribution
from .base import ABLATION_VARIANTS, Scorer, TaskResult, register

__all__ = ["VERIFIED_PER_K", "Verified", "candidates", "disagreements", "ranks", "top_by_size"]

Z95 = 1.96  # half-width of the screen's 95% interval, in standard errors
RANK_MOVE = 10  # a verified head whose rank moves by more than this is a disagreement
# heads verified per unit of k, for the estimate (measured with two screens, k = 20, 8 tasks × 8 items, 2026-12-02:
# resample 3.2, zero 6.0, mean 5.4; docs/history/measured-2026.md)
VERIFIED_PER_K = {"resample": 3, "zero": 6, "mean": 5}


@register
class Verified(Scorer):
    name = "verified"
    summary = "attribution screens every head, exact ablation re-scores each task's top candidates"
    order = 25
    variants = ABLATION_VARIANTS
    options = {"k": 20, "candidates": None, "steps": [1, 2]}
    option_help = {
        "k": "the top k heads per task it must get right",
        "candidates": "re-score the top K by |score| instead of the intervals' pick",
        "steps": "its attribution screens' points, e.g. 1,2",
    }
    pools = True
    engines = ENGINES

    def check(self, options):
        steps = options.get("steps", self.options["steps"])
        given = list(steps) if isinstance(steps, (list, tuple)) else [steps]  # screens, each a valid steps=
        checked = [check_steps(self.name, {**options, "steps": m}, self.options) for m in given]
        screens = [c["steps"] for c in checked]
        if not screens or len(set(screens)) != len(screens):
            raise InputError(f"verified option steps={steps!r}: give distinct screens, e.g. [1, 2], or one int")
        points = len(path_points(screens))
        if points > MAX_STEPS:
            raise InputError(
                f"verified option steps={steps!r}: these screens run {points} distinct path points, at most "
                f"{MAX_STEPS} (each is a forward and backward pass): give fewer or smaller screens, e.g. [1, 2]"
            )
        out = {**checked[0], "steps": screens if len(screens) > 1 else screens[0]}
        for name in ("k", "candidates"):
            value = out[name]
            if value is None and name == "candidates":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                what = "a whole number ≥ 1" + (
                    ", or None (the screen's intervals choose)" if name == "candidates" else ""
                )
                raise InputError(f"verified option {name}={value!r}: give {what}")
            out[name] = int(value)
        return out

    def cost(self, size, n_layers, n_heads, options):
        """The screens, then the verified heads' exact re-runs (``candidates``, else ``VERIFIED_PER_K[ablation]``
        · k: how many the screens' intervals choose is known only once they have run)."""
        verified = options["candidates"] or VERIFIED_PER_K[size.ablation] * options["k"]
        screens = path_cost(size, n_layers, screens_of(options))
        return screens + sweep_cost(size, n_layers, min(verified, n_layers * n_heads))

    def run(self, model, jobs, options, batch_size, progress):
        """Screens every task (in one pooled run on the bridge; one request per task on the nnsight engine), then
        verifies and yields the tasks one by one."""
        check_counts(options, model.cfg.n_layers, model.cfg.n_heads)
        traced = getattr(model, "engine", "bridge") != "bridge"
        if traced:
            screened = (list(per_screen) for per_screen, _ in traced_attribution(model, jobs, screens_of(options)))
        else:
            encoded = [(job.enc, job.ablation) for job in jobs]
            pooled = attribute_screens(model, encoded, batch_size, progress, screens_of(options))
            screened = ([s[j][0] for s in pooled] for j in range(len(jobs)))
        for job, per_screen in zip(jobs, screened):
            screen = per_screen[0]
            if options["candidates"]:
                chosen = top_by_size(per_screen, options["candidates"])
            else:
                chosen = np.logical_or.reduce([candidates(pe, options["k"]) for pe in per_screen])
            if traced:
                exact = traced_ablation(model, job, progress, heads=chosen)
            else:
                exact = ablate(model, job.enc, job.ablation, batch_size, progress, job.partial, heads=chosen)
            per_example = np.where(chosen[None], exact.per_example, screen)
            found = disagreements(screen.mean(0), per_example.mean(0), chosen)
            params = {"disagreements": {job.task.name: found}, "n_verified": {job.task.name: int(chosen.sum())}}
            yield TaskResult(per_example, exact.baseline, params, verified=chosen)


def check_counts(options: dict, n_layers: int, n_heads: int) -> None:
    """Refuse ``candidates`` above the model's head count before anything runs: it would verify every head (exact
    ablation's whole sweep after the screens), not the K the call asks for. (``k`` is a rank, capped at the head
    count by ``candidates``: its default 20 exceeds a small model's heads.)"""
    heads, fixed = n_layers * n_heads, options["candidates"]
    if fixed is not None and fixed > heads:
        raise InputError(
            f"verified option candidates={fixed!r} is more than the {heads} heads of this {n_layers} × {n_heads} "
            f"model: give at most {heads} (every head verified is method='ablation', without the screens)"
        )


def screens_of(options: dict) -> list[int]:
    """The screens' ``steps``, first the one whose estimates fill the map."""
    steps = options["steps"]
    return list(steps) if isinstance(steps, list) else [steps]


def candidates(per_example: np.ndarray, k: int) -> np.ndarray:
    """(L, H) bool: the heads to verify from a screen's per-item scores (n, L, H): every head that could be among
    the top ``k`` (signed, as ``HeadScores.top``) — its interval's upper end mean + Z95 · se reaches the k-th
    highest mean — and the top ``k`` by |mean|, since the screen can get a strong head's sign wrong."""
    mean = per_example.mean(0).ravel()
    k = min(k, mean.size)
    n = per_example.shape[0]
    se = per_example.std(0, ddof=1).ravel() / np.sqrt(n) if n > 1 else np.full(mean.shape, np.inf)
    chosen = (mean + Z95 * se >= np.sort(mean)[-k]).reshape(per_example.shape[1:])
    return chosen | top_by_size([per_example], k)


def top_by_size(screens: list[np.ndarray], fixed: int) -> np.ndarray:
    """(L, H) bool: exactly ``fixed`` heads (``candidates=K``), the top by |mean| of the screens' per-item scores
    (each (n, L, H)): a head ranks by its best rank in any screen, ties in the first screen's order."""
    size_ranks = [ranks(np.abs(pe.mean(0))).ravel() for pe in screens]  # 1 = largest |mean|
    order = np.lexsort((size_ranks[0], np.min(size_ranks, axis=0)))  # best rank, then the first screen's
    chosen = np.zeros(order.size, dtype=bool)
    chosen[order[:fixed]] = True
    return chosen.reshape(screens[0].shape[1:])


def ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each head (1 = highest, signed), as ``HeadScores.rank``."""
    order = np.argsort(-values, axis=None, kind="stable")
    out = np.empty(values.size, dtype=np.int64)
    out[order] = np.arange(1, values.size + 1)
    return out.reshape(values.shape)


def disagreements(screen: np.ndarray, verified: np.ndarray, chosen: np.ndarray) -> list[dict]:
    """The verified heads where the screen (L, H) and the verified map (L, H) disagree: opposite signs, or
    ranks more than ``RANK_MOVE`` apart; largest exact |value| first. JSON-ready dicts."""
    r_screen, r_verified = ranks(screen), ranks(verified)
    found = []
    for layer, head in zip(*np.nonzero(chosen)):
        a, e = float(screen[layer, head]), float(verified[layer, head])
        ra, re = int(r_screen[layer, head]), int(r_verified[layer, head])
        why = []
        if a * e < 0:
            why.append("sign flip")
        if abs(ra - re) > RANK_MOVE:
            why.append(f"rank {ra} → {re}")
        if why:
            found.append(
                dict(
                    layer=int(layer),
                    head=int(head),
                    attribution=a,
                    attribution_rank=ra,
                    exact=e,
                    exact_rank=re,
                    why=", ".join(why),
                )
            )
    return sorted(found, key=lambda d: -abs(d["exact"]))
