"""Faithfulness curves on the embedded model, the Cognitive Mirrors Fig. 3 protocol, as a table for the docs.

For the eight built-in tasks: the exact resample-ablation map, attribution patching and screen-then-verify
(k = 20); per task and k, the task's metric (logit difference) with each map's top-k heads zero-ablated
together, and with ``--draws`` layer-matched random sets of k. The lower a map's curve below random-k, the
more its top heads carry the task. Maps are cached (``headlab.score``'s cache), so a rerun only re-masks.

    python benchmarks/faithfulness_table.py [--items 8] [--ks 1 2 4 8 16 32 64] [--draws 10] [--no-results]

Writes benchmarks/results/faithfulness_table.json (docs/performance.md).
"""

from __future__ import annotations

import time

from common import Results, builtin_tasks, offline, parser

offline()

import numpy as np  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--draws", type=int, default=10)
    args = ap.parse_args()
    results = Results(
        "faithfulness_table",
        "Faithfulness curves on the embedded model",
        "The Cognitive Mirrors Fig. 3 protocol for the exact resample map, attribution and verified (k = 20): each "
        "map's top k heads zero-ablated together against layer-matched random sets of k; the lower a map's curve "
        "below random-k, the more its top heads carry the task.",
    )

    import headlab

    model = headlab.load_model()
    tasks = builtin_tasks(args.items)
    t0 = time.perf_counter()
    maps = {
        label: headlab.score(model, tasks, method=method, ablation="resample", progress=False, **extra)
        for label, method, extra in [
            ("exact", "ablation", {}),
            ("attribution", "attribution", {}),
            ("verified", "verified", {"k": 20}),
        ]
    }
    t1 = time.perf_counter()
    curves = headlab.faithfulness(model, maps, list(tasks.values()), ks=args.ks, draws=args.draws, progress=False)
    t2 = time.perf_counter()
    print(f"## faithfulness: {args.items} items per task, top-k zero-ablated, {args.draws} random-k draws\n")
    print(curves.markdown())
    below = {
        label: np.mean(curves.metric[m] < curves.random_metric.mean(-1) - curves.random_metric.std(-1, ddof=1))
        for m, label in enumerate(curves.labels)
    }
    results.table(
        f"{args.items} items per task, {args.draws} random-k draws, k = {', '.join(map(str, args.ks))}",
        ["map", "share of (task, k) more than one std below random-k"],
        [[label, f"{share:.2f}"] for label, share in below.items()],
        note=f"maps {t1 - t0:.0f} s (cached after the first run), curves {t2 - t1:.0f} s",
    )
    results.save(args)


if __name__ == "__main__":
    main()
