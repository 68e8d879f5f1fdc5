"""Redraw cost of the head-importance grid: full rebuild vs in-place ``GridView.update``.

Run: ``MPLBACKEND=Agg python benchmarks/bench_redraw.py``. For two 8-task HeadScores (30 × 9, the
embedded SmolLM2, and 32 × 32), times (a) ``heatmap_grid(...)`` to PNG, (b)
``view.update(threshold=...)`` + a full draw to PNG and (c) the same update + ``view.render_png()``
(blitting); prints the median ms of ``RUNS`` runs and the ratio.
Goal: in-place ≤ 150 ms for the 8-panel grid.
"""

from __future__ import annotations

import time

import numpy as np

from headlab.models import ModelInfo
from headlab.results import HeadScores
from headlab.tasks import TASK_NAMES
from headlab.viz.plot import heatmap_grid

RUNS = 20
GOAL_MS = 150.0


def fake_scores(n_layers: int, n_heads: int, seed: int = 0) -> HeadScores:
    """An 8-task HeadScores of shape (8, n_layers, n_heads): heavy-tailed signed values, seeded."""
    rng = np.random.default_rng(seed)
    t = len(TASK_NAMES)
    values = rng.standard_normal((t, n_layers, n_heads)) * rng.gamma(0.5, 1.0, (t, n_layers, n_heads))
    info = ModelInfo(f"random-{n_layers}x{n_heads}", n_layers, n_heads, n_heads, 64, 576, 49152)
    return HeadScores(
        values,
        list(TASK_NAMES),
        info,
        "attribution",
        {"seed": seed},
        [1] * t,
        np.zeros(t),
        values[:, None].astype(np.float32),
    )


def median_ms(fn, runs: int = RUNS) -> float:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def bench(scores: HeadScores) -> tuple[float, float, float]:
    """(rebuild, in-place full draw, in-place blit) ms per redraw to PNG bytes — what the explorer shows —
    with thresholds cycling through quantiles of the fraction map."""
    thresholds = np.quantile(scores.normalized("fraction"), np.linspace(0.5, 0.95, RUNS))

    def rebuild(i):
        heatmap_grid(scores, threshold=thresholds[i])._repr_png_()

    fig = heatmap_grid(scores, threshold=thresholds[0])
    view = fig._headlab_view
    view.render_png()

    def in_place_full(i):
        view.update(threshold=thresholds[i])
        fig._repr_png_()

    def in_place_blit(i):
        view.update(threshold=thresholds[i])
        view.render_png()

    return median_ms(rebuild), median_ms(in_place_full), median_ms(in_place_blit)


def main() -> None:
    print(
        f"{'scores':<10} {'rebuild':>9} {'in place, full draw':>20} {'in place, blit':>15} {'ratio':>6}  "
        f"goal ≤ {GOAL_MS:.0f} ms"
    )
    for shape in ((30, 9), (32, 32)):
        scores = fake_scores(*shape)
        full, redraw, blit = bench(scores)
        status = "ok" if blit <= GOAL_MS else "SLOW"
        name = f"8×{shape[0]}×{shape[1]}"
        print(f"{name:<10} {full:>7.1f}ms {redraw:>18.1f}ms {blit:>13.1f}ms {full / blit:>5.1f}×  {status}")


if __name__ == "__main__":
    main()
