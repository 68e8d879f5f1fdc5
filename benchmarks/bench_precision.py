"""bfloat16 and float16 against float32 on the embedded model, every scorer, measured side by side.

For each scorer the same items are scored with the model in float32, bfloat16 and float16 (on this
machine's device); per task the Spearman ρ of the half-precision map against float32 over all heads, and the
largest |difference| relative to the float32 map's largest |value|. The goal: ρ ≥ 0.99 for every scorer.

    python benchmarks/bench_precision.py [--items 8] [--exact-items 4] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8, help="items per task (attribution, probe)")
    ap.add_argument(
        "--exact-items", type=int, default=3, help="items per task for exact ablation (2 tasks), gating (1)"
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float16"])
    ap.add_argument("--only", nargs="+", default=None, help="scorer labels to run (default: all)")
    args = ap.parse_args()

    from scipy.stats import spearmanr

    import headlab
    from headlab.tasks import builtin

    tasks = {n: t.subset(args.items) for n, t in builtin().items()}
    exact_tasks = {n: tasks[n].subset(args.exact_items) for n in ("Knowledge Recall", "Math Calculation")}
    runs = [
        ("attribution · resample", dict(method="attribution", ablation="resample"), tasks),
        ("attribution · zero", dict(method="attribution", ablation="zero"), tasks),
        ("ablation · resample", dict(method="ablation", ablation="resample"), exact_tasks),
        ("probe · logistic", dict(method="probe", probe="logistic"), tasks),
        ("gating", dict(method="gating", seeds=[0], steps=10), {"Math Calculation": exact_tasks["Math Calculation"]}),
    ]
    print(
        f"## half precision vs float32, embedded model ({args.items} items per task; exact and gating: "
        f"{args.exact_items} items; device {args.device})\n"
    )
    print("| scorer | dtype | min ρ over tasks | median ρ | max abs diff / max abs float32 | time (s) | float32 (s) |")
    print("|---|---|---:|---:|---:|---:|---:|", flush=True)
    models = {dtype: headlab.load_model(device=args.device, dtype=dtype) for dtype in ["float32", *args.dtypes]}
    for label, kwargs, chosen in runs:
        if args.only and not any(label.startswith(o) for o in args.only):
            continue
        maps, seconds = {}, {}
        for dtype, model in models.items():
            t = time.perf_counter()
            maps[dtype] = headlab.score(model, chosen, cache=False, progress=False, **kwargs)
            seconds[dtype] = time.perf_counter() - t
        ref = maps["float32"]
        for dtype in args.dtypes:
            other = maps[dtype]
            rhos = [spearmanr(ref[t].ravel(), other[t].ravel()).statistic for t in ref.tasks]
            err = max(np.abs(ref[t] - other[t]).max() / max(np.abs(ref[t]).max(), 1e-12) for t in ref.tasks)
            print(
                f"| {label} | {dtype} | {min(rhos):.3f} | {np.median(rhos):.3f} | {err:.2e} | "
                f"{seconds[dtype]:.1f} | {seconds['float32']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
