"""Kernel-side cost of an explorer redraw: what the grid sends now (numbers for the browser's canvas) against
what it sent before (a PNG drawn by matplotlib), side by side in one run.

Run: ``MPLBACKEND=Agg python benchmarks/bench_redraw.py [--no-results]`` (writes
benchmarks/results/bench_redraw.json). For two 8-task HeadScores (30 × 9, the embedded
SmolLM2, and 32 × 32), with thresholds cycling through quantiles, times per redraw (median of ``RUNS``):

- **numbers**: ``display.task_panels`` + ``scale_of`` + ``canvas.state`` — the explorer's whole kernel-side
  redraw — and the bytes it sends;
- **PNG**: ``GridView.update`` + a full matplotlib draw to PNG at the same panel count, and its bytes.

The browser's own time from the action to the drawn canvas is measured by ``tests/browser`` (goal ≤ 150 ms,
median of 10; ``artifacts/browser/latency.json``).
"""

from __future__ import annotations

import json

import numpy as np
from common import Results, parser, timed

from headlab.models import ModelInfo
from headlab.results import HeadScores
from headlab.tasks import TASK_NAMES
from headlab.viz import canvas, display
from headlab.viz.plot import heatmap_grid

RUNS = 20


def fake_scores(n_layers: int, n_heads: int, seed: int = 0) -> HeadScores:
    """An 8-task HeadScores of shape (8, n_layers, n_heads): heavy-tailed signed values, seeded."""
    rng = np.random.default_rng(seed)
    t = len(TASK_NAMES)
    values = rng.standard_normal((t, n_layers, n_heads)) * rng.gamma(0.5, 1.0, (t, n_layers, n_heads))
    info = ModelInfo(f"random-{n_layers}x{n_heads}", n_layers, n_heads, n_heads, 64, 576, 49152)
    return HeadScores(
        values, list(TASK_NAMES), info, "attribution", {"seed": seed}, [1] * t, np.zeros(t),
        values[:, None].astype(np.float32),
    )  # fmt: skip


def median_ms(fn, runs: int = RUNS) -> tuple[float, int]:
    times, size = [], 0
    for i in range(runs):
        size, seconds = timed(lambda i=i: fn(i))
        times.append(seconds)
    return 1000 * float(np.median(times)), size


def bench(scores: HeadScores) -> tuple[tuple[float, int], tuple[float, int]]:
    thresholds = np.quantile(scores.normalized("share"), np.linspace(0.5, 0.95, RUNS))
    tasks = list(scores.tasks)

    def numbers(i):
        sel = display.Selection(threshold=float(thresholds[i]))
        panels = display.task_panels(scores, tasks, "share", sel)
        scale = display.scale_of([p.shown for p in panels], "share")
        state = canvas.state(panels, scale, unit="share of Σ|s|", label="signed share s/Σ|s|", version=i)
        return len(json.dumps(state["spec"])) + sum(len(state[k]) for k in canvas.BINARY)

    fig = heatmap_grid(scores, threshold=float(thresholds[0]))
    view = fig._headlab_view

    def png(i):
        view.update(threshold=float(thresholds[i]))
        return len(fig._repr_png_())

    return median_ms(numbers), median_ms(png)


def main() -> None:
    args = parser(__doc__).parse_args()
    results = Results(
        "bench_redraw",
        "Explorer redraw in the kernel",
        "The explorer's kernel-side redraw (numbers for the browser's canvas) against the PNG matplotlib drew "
        "before, per redraw (median of 20, thresholds cycling), with the bytes each sends.",
    )
    rows = []
    for shape in ((30, 9), (32, 32)):
        (n_ms, n_b), (p_ms, p_b) = bench(fake_scores(*shape))
        rows.append(
            [
                f"8 × {shape[0]} × {shape[1]}",
                f"{n_ms:.0f} ms, {n_b / 1024:.0f} kB",
                f"{p_ms:.0f} ms, {p_b / 1024:.0f} kB",
                f"{p_ms / n_ms:.0f}×",
            ]
        )
    results.table(f"median of {RUNS} redraws", ["scores", "numbers for the canvas", "PNG (the old way)", "ratio"], rows)
    results.save(args)


if __name__ == "__main__":
    main()
