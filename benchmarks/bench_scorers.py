"""Scorers on the embedded model, measured side by side in one run.

1. Exact resample ablation (headlab's replay) vs TransformerLens' patching loop
   (get_act_patch_attn_head_out_all_pos, all 270 heads): time, ratio, max |difference|.
2. Exact ablation vs attribution patching on the eight tasks, per ablation (resample, zero): time and ratio
   (attribution: its first call, which also pays the process's first touch of its activation memory, and
   the median of the next ``--repeats`` calls, on which the ratio is taken; both ratios are printed),
   Spearman ρ per task over the whole map and over the exact top-20 heads, top-20 overlap, and the heads
   they disagree on most.
3. Integrated gradients (``steps=m``): per m of ``--steps``, time, the ratio to exact ablation, and
   Spearman ρ against exact per task, over the whole map and over the exact top-20; then the same for the
   one-layer-at-a-time path (``path="layers"``) per m of ``--layer-steps``.
4. Screen, then verify (``method="verified"``, k = 20; one screen, then two: ``steps=[1, 2]``): time and cost
   against the full exact sweep, heads verified per task, and the top-20 overlap (Jaccard) of the verified map
   with the exact one.
5. The path of integrated gradients (resample), by the plain reference at ``--path-steps`` points: every layer's
   z interpolated at once (what ``steps=`` does), one layer's z at a time (EAP-IG-activations' form), or the
   input embeddings (EAP-IG's original form); ρ against exact, and each path's time against the plain
   reference of exact ablation (one full forward per head), all full forwards, so the ratio is the paths' work.
6. Peak RSS of the process.

    python benchmarks/bench_scorers.py [--items 8] [--tl-items 8] [--tl-task "Knowledge Recall"]
                                       [--repeats 3] [--ablations resample zero] [--steps 1 2 4 8 16]
                                       [--layer-steps 2 4] [--path-steps 4] [--tl-only]
"""

from __future__ import annotations

import argparse
import contextlib
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
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="integrated-gradient points")
    ap.add_argument(
        "--layer-steps", type=int, nargs="*", default=[2, 4], help="points of the one-layer-at-a-time path (none: skip)"
    )
    ap.add_argument("--path-steps", type=int, default=4, help="points for the three paths of section 5 (0: skip)")
    ap.add_argument("--tl-only", action="store_true", help="only section 1, exact ablation vs TransformerLens")
    args = ap.parse_args()

    import headlab
    from headlab.analysis.compare import agreement, disagreements
    from headlab.scorers.reference import transformerlens_patching
    from headlab.tasks import builtin

    model, t_load = timed(headlab.load_model)
    print(f"embedded model loaded in {t_load:.1f} s; torch threads: {torch.get_num_threads()}")

    task = builtin([args.tl_task])[args.tl_task].subset(args.tl_items)
    exact = lambda: headlab.score(model, task, method="ablation", ablation="resample", cache=False, progress=False)  # noqa: E731
    exact()  # warm-up: the fast paths' proofs, first touch of the activation memory
    ours, t_ours = timed(exact)
    with bridge_blocks():
        bridged, t_bridged = timed(exact)
    ref, t_tl = timed(lambda: transformerlens_patching(model, task))
    ours_again, t_again = timed(exact)
    t_ours = (t_ours + t_again) / 2
    diff = np.abs(ours.values[0] - ref).max()
    print(
        f"\n## exact resample ablation vs TransformerLens patching ({args.tl_task}, {args.tl_items} items, "
        f"{ours.model.n_layers * ours.model.n_heads} heads)"
    )
    print("| scorer | time (s) |\n|---|---:|")
    print(f"| TransformerLens get_act_patch_attn_head_out_all_pos | {t_tl:.1f} |")
    print(f"| headlab exact ablation, every re-run block through the bridge | {t_bridged:.1f} |")
    print(f"| headlab exact ablation (unhooked blocks plain; mean of the runs before and after TL) | {t_ours:.1f} |")
    print(
        f"speed-up: {t_tl / t_ours:.2f}x (bridge blocks only: {t_tl / t_bridged:.2f}x)   max |difference|: {diff:.2e}"
        f" (plain vs bridge blocks: {np.abs(ours.values - bridged.values).max():.1e})"
    )

    if args.tl_only:
        return
    tasks = {name: t.subset(args.items) for name, t in builtin().items()}
    exacts = {}
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
        integrated_gradients(model, tasks, ablation, exact, t_exact, args.steps)
        if args.layer_steps:
            integrated_gradients(model, tasks, ablation, exact, t_exact, args.layer_steps, path="layers")
        screen_then_verify(model, tasks, ablation, exact, t_exact)
        exacts[ablation] = exact
    if args.path_steps and "resample" in exacts:
        paths(model, tasks, args.path_steps, exacts["resample"])
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


@contextlib.contextmanager
def bridge_blocks():
    """Every re-run block through the bridge (the replay before plain blocks), for the side-by-side row."""
    from headlab.engine import replay

    proven = replay.plain_supported
    replay.plain_supported = lambda model: False
    try:
        yield
    finally:
        replay.plain_supported = proven


def integrated_gradients(model, tasks, ablation, exact, t_exact, steps, path: str = "activations") -> None:
    """ρ and time against m along ``path``: one call per m, on the same tasks as ``exact``."""
    import headlab
    from headlab.analysis.compare import agreement

    rows = {}
    for m in steps:
        ig, t = timed(
            lambda: headlab.score(
                model, tasks, method="attribution", ablation=ablation, steps=m, path=path, cache=False, progress=False
            )
        )
        rows[m] = (t, agreement(exact, ig, k=20))
    print(f"\n## integrated gradients, path={path}, vs exact ablation ({ablation}): Spearman ρ whole / exact top-20")
    print("| task | " + " | ".join(f"m = {m}" for m in steps) + " |\n|---|" + "---:|" * len(steps))
    for name in exact.tasks:
        cells = [f"{rows[m][1].loc[name, 'rho']:.2f} / {rows[m][1].loc[name, 'rho_top20']:.2f}" for m in steps]
        print(f"| {name} | " + " | ".join(cells) + " |")
    mins = [f"{rows[m][1]['rho'].min():.2f} / {rows[m][1]['rho_top20'].min():.2f}" for m in steps]
    print("| **min over tasks** | " + " | ".join(mins) + " |")
    print("| time (s) | " + " | ".join(f"{rows[m][0]:.1f}" for m in steps) + " |")
    print("| exact / IG time | " + " | ".join(f"{t_exact / rows[m][0]:.1f}×" for m in steps) + " |")


def screen_then_verify(model, tasks, ablation, exact, t_exact, k: int = 20) -> None:
    """``method="verified"`` against the full exact sweep, with one screen (``steps=1``) and two (the default,
    ``steps=[1, 2]``): cost, heads verified, top-k overlap."""
    import headlab
    from headlab.analysis.compare import agreement

    for steps in (1, [1, 2]):
        v, t = timed(
            lambda: headlab.score(
                model, tasks, method="verified", ablation=ablation, k=k, steps=steps, cache=False, progress=False
            )
        )
        table = agreement(exact, v, k=k)
        mask = v.verified
        off = max(np.abs(v.values[i][mask[i]] - exact.values[i][mask[i]]).max() for i in range(len(v.tasks)))
        print(f"\n## screen, then verify ({ablation}, k = {k}, steps={steps}) vs the full exact sweep")
        print(f"| task | heads verified (of {v.values[0].size}) | top-{k} Jaccard | ρ whole map | disagreements |")
        print("|---|---:|---:|---:|---:|")
        for i, name in enumerate(v.tasks):
            found = len(v.params["disagreements"].get(name, []))
            print(
                f"| {name} | {int(mask[i].sum())} | {table.loc[name, f'jaccard_top{k}']:.2f} | "
                f"{table.loc[name, 'rho']:.2f} | {found} |"
            )
        print(
            f"verified: {t:.1f} s, exact: {t_exact:.1f} s — cost {t / t_exact:.2f} of exact "
            f"({t_exact / t:.1f}× cheaper); "
            f"mean Jaccard {table[f'jaccard_top{k}'].mean():.3f}, min {table[f'jaccard_top{k}'].min():.2f}; "
            f"max |verified − exact| on the verified heads: {off:.1e}"
        )


def paths(model, tasks, steps: int, exact) -> None:
    """Integrated gradients along the three paths, plain references, resample: ρ and time against the plain
    reference of exact ablation."""
    from scipy.stats import spearmanr

    from headlab.scorers.reference import PATHS, per_head_ablation
    from headlab.scorers.reference import integrated_gradients as reference_ig

    print(f"\n## path of integrated gradients (resample, m = {steps}, plain reference): ρ vs exact, whole / top-20")
    print("| task | " + " | ".join(PATHS) + " |\n|---|" + "---:|" * len(PATHS))
    times = dict.fromkeys(("exact", *PATHS), 0.0)
    for name, task in tasks.items():
        x = exact[name].ravel()
        top = np.argsort(-x, kind="stable")[:20]
        times["exact"] += timed(lambda: per_head_ablation(model, task, "resample"))[1]
        cells = []
        for path in PATHS:
            y, t = timed(lambda: reference_ig(model, task, "resample", steps=steps, path=path).ravel())
            times[path] += t
            cells.append(f"{spearmanr(x, y).statistic:.2f} / {spearmanr(x[top], y[top]).statistic:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| time (s), plain reference | " + " | ".join(f"{times[p]:.1f}" for p in PATHS) + " |")
    ratios = " | ".join(f"{times['exact'] / times[p]:.1f}x" for p in PATHS)
    print(f"| exact's plain reference ({times['exact']:.1f} s) / time | {ratios} |")


if __name__ == "__main__":
    main()
