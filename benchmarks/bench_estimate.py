"""The explorer's cost model against real runs: ``scoring.estimate`` (each scorer's ``cost`` in block-token
passes over the model's measured rate) next to the measured time of the same ``score()`` call, side by side.

Run: ``python benchmarks/bench_estimate.py [method ...]`` (embedded model, two built-in tasks of 8 items, no cache;
methods, e.g. ``probe``, to run only those).
Prints, per method, the estimate, the measured time and their ratio. The explorer asks before a job it
estimates above 30 s; a ratio within about 2× either way is what that needs.
"""

from __future__ import annotations

import sys
import time

import headlab
from headlab import scoring
from headlab.tasks import builtin

CASES = [
    ("attribution", {"ablation": "resample"}),
    ("attribution", {"ablation": "resample", "steps": 8}),
    ("verified", {"ablation": "resample"}),
    ("verified", {"ablation": "zero"}),
    ("ablation", {"ablation": "zero"}),
    ("ablation", {"ablation": "resample"}),
    ("probe", {"probe": "logistic"}),
    ("probe", {"probe": "mlp"}),
]
TASKS = ["Retrieval", "Math Calculation"]


def main() -> None:
    model = headlab.load_model()
    tasks = [t.subset(8) for t in builtin(TASKS).values()]
    print(f"{'method':<22} {'estimate':>9} {'measured':>9} {'ratio':>6}")
    only = sys.argv[1:]  # e.g. ``probe``: only those methods
    for method, kwargs in CASES:
        if only and method not in only:
            continue
        guess = scoring.estimate(model, tasks, method=method, cache=False, **kwargs)
        start = time.perf_counter()
        scoring.score(model, tasks, method=method, cache=False, progress=False, **kwargs)
        took = time.perf_counter() - start
        label = " · ".join([method, *map(str, kwargs.values())])
        print(f"{label:<22} {guess.seconds:>8.1f}s {took:>8.1f}s {took / guess.seconds:>5.2f}×")


if __name__ == "__main__":
    main()
