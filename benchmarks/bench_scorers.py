"""Scorers on the embedded model, measured side by side in one run.

1. Exact resample ablation (headlab's replay) vs TransformerLens' patching loop
   (get_act_patch_attn_head_out_all_pos, all 270 heads): time, ratio, max |difference|.
2. Exact ablation vs attribution patching on the eight tasks, per ablation (resample, zero): time and ratio
   (attribution: its first call, which also pays the process's first touch of its activation memory, and
   the median of the next ``--repeats`` calls, on which the ratio is taken; both ratios are printed),
   Spearman ρ per task over the whole map and over the exact top-20 heads, top-20 overlap, and the heads
   they disagree on most.
3. Peak RSS of the process.

    python benchmarks/bench_scorers.py [--items 8] [--tl-items 8] [--tl-task "Knowledge Recall"]
                                       [--repeats 3] [--ablations resample zero]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens' patching loop draws its own bar

import numpy as np  # noqa: E402
import torch  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8, help="items per task for exact vs attribution")
    ap.add_argument("--tl-items", type=int, default=8, help="items for the TransformerLens comparison")
    ap.add_argument("--tl-task", default="Knowledge Recall")
    ap.add_argument("--repeats", type=int, default=3, help="timed attribution calls after the first")
    ap.add_argument(
        "--ablations",
        nargs="+",
        default=["resample", "zero"],
        choices=["resample", "zero", "mean"],
        help="ablations to compare exact vs attribution on",
    )
    args = ap.parse_args()

    import headlab
    from headlab.analysis.compare import agreement, disagreements
    from headlab.scorers.reference import transformerlens_patching
    from headlab.tasks import builtin

    model, t_load = timed(headlab.load_model)
    print(f"embedded model loaded in {t_load:.1f} s; torch threads: {torch.get_num_threads()}")

    task = builtin([args.tl_task])[args.tl_task].subset(args.tl_items)
    ours, t_ours = timed(
        lambda: headlab.score(model, task, method="ablation", ablation="resample", cache=False, progress=False)
    )
    ref, t_tl = timed(lambda: transformerlens_patching(model, task))
    diff = np.abs(ours.values[0] - ref).max()
    print(
        f"\n## exact resample ablation vs TransformerLens patching ({args.tl_task}, {args.tl_items} items, "
        f"{ours.model.n_layers * ours.model.n_heads} heads)"
    )
    print("| scorer | time (s) |\n|---|---:|")
    print(f"| TransformerLens get_act_patch_attn_head_out_all_pos | {t_tl:.1f} |")
    print(f"| headlab exact ablation (replay) | {t_ours:.1f} |")
    print(f"speed-up: {t_tl / t_ours:.2f}x   max |difference|: {diff:.2e}")

    tasks = {name: t.subset(args.items) for name, t in builtin().items()}
    for ablation in args.ablations:
        exact, t_exact = timed(
            lambda: headlab.score(model, tasks, method="ablation", ablation=ablation, cache=False, progress=False)
        )
        attribution = lambda: headlab.score(
            model,
            tasks,
            method="attribution",
            ablation=ablation,  # noqa: E731
            cache=False,
            progress=False,
        )
        attr, t_first = timed(attribution)
        t_warm = float(np.median([timed(attribution)[1] for _ in range(args.repeats)]))
        print(f"\n## exact ablation vs attribution patching (8 tasks × {args.items} items, {ablation})")
        print("| scorer | time (s) |\n|---|---:|")
        print(f"| exact ablation | {t_exact:.1f} |\n| attribution patching, first call | {t_first:.1f} |")
        print(f"| attribution patching, median of the next {args.repeats} | {t_warm:.1f} |")
        print(f"speed-up: {t_exact / t_warm:.1f}x (first call: {t_exact / t_first:.1f}x)")
        table = agreement(exact, attr, k=20)
        print("\n| task | Spearman ρ (all 270 heads) | ρ over exact top-20 | top-20 overlap (Jaccard) |")
        print("|---|---:|---:|---:|")
        for name, row in table.iterrows():
            print(f"| {name} | {row['rho']:.2f} | {row['rho_top20']:.2f} | {row['jaccard_top20']:.2f} |")
        worst = table["rho"].idxmin()
        print(f"\nheads that disagree most in {worst} (rank by exact vs by attribution):")
        print(disagreements(exact, attr, worst, n=5).round(4).to_string(index=False))
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


if __name__ == "__main__":
    main()
