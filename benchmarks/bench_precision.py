"""bfloat16 and float16 against float32 on the embedded model, every scorer, measured side by side.

For each scorer the same items are scored with the model in float32, bfloat16 and float16 (on this
machine's device); per task the Spearman ρ of the half-precision map against float32 over all heads, and the
largest |difference| relative to the float32 map's largest |value|. The goal: ρ ≥ 0.99 for every scorer.
Also per scorer: ρ over the heads whose float32 |score| is ≥ 5% of the map's largest, ρ over float32's top 20,
and ρ of the first n items' pooled map (n = 1, 2, 4, …: how pooling averages the rounding out). With
``--rounded``, one more model per dtype runs float32 arithmetic on weights rounded to that dtype: it separates
the rounding of the weights from that of the activations.

    python benchmarks/bench_precision.py [--items 8] [--exact-items 3] [--device auto] [--rounded] [--no-results]

Writes benchmarks/results/bench_precision.json (docs/performance.md).
"""

from __future__ import annotations

from common import Results, builtin_tasks, offline, parser, timed

offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--items", type=int, default=8, help="items per task (attribution, probe)")
    ap.add_argument(
        "--exact-items", type=int, default=3, help="items per task for exact ablation (2 tasks), gating (1)"
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float16"])
    ap.add_argument("--only", nargs="+", default=None, help="scorer labels to run (default: all)")
    ap.add_argument("--rounded", action="store_true", help="also float32 arithmetic on weights rounded to each dtype")
    args = ap.parse_args()
    results = Results(
        "bench_precision",
        "Half precision against float32",
        "The same items scored with the embedded model in float32, bfloat16 and float16: per task the Spearman ρ "
        "of the half-precision map against float32 over all heads, and the largest |difference| relative to the "
        "float32 map's largest |value|. Goal: ρ ≥ 0.99 for every scorer.",
    )

    from scipy.stats import spearmanr

    import headlab

    tasks = builtin_tasks(args.items)
    exact_tasks = {n: tasks[n].subset(args.exact_items) for n in ("Knowledge Recall", "Math Calculation")}
    runs = [
        ("attribution · resample", dict(method="attribution", ablation="resample"), tasks),
        ("attribution · zero", dict(method="attribution", ablation="zero"), tasks),
        ("ablation · resample", dict(method="ablation", ablation="resample"), exact_tasks),
        ("probe · logistic", dict(method="probe", probe="logistic"), tasks),
        ("gating", dict(method="gating", seeds=[0], steps=10), {"Math Calculation": exact_tasks["Math Calculation"]}),
    ]
    title = (
        f"half precision vs float32, embedded model ({args.items} items per task; exact and gating: "
        f"{args.exact_items} items; device {args.device})"
    )
    print(f"## {title}\n")
    headers = [
        "scorer", "dtype", "min ρ over tasks", "median ρ", "ρ, heads ≥ 5% of max (min)", "ρ, float32 top-20 (min)",
        "max abs diff / max abs float32", "ρ by items pooled (min over tasks)", "time (s)", "float32 (s)",
    ]  # fmt: skip
    print("| " + " | ".join(headers) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|", flush=True)
    rows = []
    models = {dtype: headlab.load_model(device=args.device, dtype=dtype) for dtype in ["float32", *args.dtypes]}
    if args.rounded:
        for dtype in args.dtypes:
            model = headlab.load_model(device=args.device, dtype="float32")
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(getattr(torch, dtype)).float())
            models[f"float32, {dtype} weights"] = model
    for label, kwargs, chosen in runs:
        if args.only and not any(label.startswith(o) for o in args.only):
            continue
        maps, seconds = {}, {}
        for dtype, model in models.items():
            maps[dtype], seconds[dtype] = timed(
                lambda model=model: headlab.score(model, chosen, cache=False, progress=False, **kwargs)
            )
        ref = maps["float32"]
        for dtype in [d for d in models if d != "float32"]:
            other = maps[dtype]
            rhos, strong, top, pooled = [], [], [], {}
            for i, t in enumerate(ref.tasks):
                a, b = ref[t].ravel(), other[t].ravel()
                rhos.append(spearmanr(a, b).statistic)
                big = np.abs(a) >= 0.05 * np.abs(a).max()
                strong.append(spearmanr(a[big], b[big]).statistic if big.sum() > 2 else np.nan)
                k = np.argsort(-a, kind="stable")[:20]
                top.append(spearmanr(a[k], b[k]).statistic)
                n = int(ref.n_examples[i])
                for m in [2**j for j in range(8) if 2**j < n] + [n]:
                    x = np.nanmean(ref.per_example[i, :m], 0).ravel()
                    y = np.nanmean(other.per_example[i, :m], 0).ravel()
                    pooled.setdefault(m, []).append(spearmanr(x, y).statistic)
            err = max(np.abs(ref[t] - other[t]).max() / max(np.abs(ref[t]).max(), 1e-12) for t in ref.tasks)
            by_items = ", ".join(f"{m}: {min(r):.2f}" for m, r in pooled.items())
            row = [
                label, dtype, f"{min(rhos):.3f}", f"{np.median(rhos):.3f}", f"{np.nanmin(strong):.3f}",
                f"{min(top):.3f}", f"{err:.1e}", by_items, f"{seconds[dtype]:.1f}", f"{seconds['float32']:.1f}",
            ]  # fmt: skip
            print("| " + " | ".join(row) + " |", flush=True)
            rows.append(row)
    results.table(title, headers, rows, echo=False)
    results.save(args)


if __name__ == "__main__":
    main()
