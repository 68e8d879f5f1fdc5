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
                                       [--layer-steps 2 4] [--path-steps 4] [--tl-only] [--no-results]

Writes benchmarks/results/bench_scorers.json (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import resource

from common import Results, builtin_tasks, embedded_model, offline, parser, reference, timed

offline()  # TransformerLens' patching loop draws its own bar

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = parser(__doc__, repeats=3)
    ap.add_argument("--items", type=int, default=8, help="items per task for exact vs attribution")
    ap.add_argument("--tl-items", type=int, default=8, help="items for the TransformerLens comparison")
    ap.add_argument("--tl-task", default="Knowledge Recall")
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
    results = Results(
        "bench_scorers",
        "Scorers on the embedded model",
        "Exact ablation against TransformerLens' patching loop; attribution patching, integrated gradients and "
        "screen-then-verify against exact ablation (time, ratio, agreement), side by side in one process.",
    )

    import headlab
    from headlab.analysis.compare import agreement, disagreements

    model, t_load = embedded_model()
    print(f"embedded model loaded in {t_load:.1f} s; torch threads: {torch.get_num_threads()}")

    task = builtin_tasks(args.tl_items, [args.tl_task])[args.tl_task]
    exact = lambda: headlab.score(model, task, method="ablation", ablation="resample", cache=False, progress=False)  # noqa: E731
    exact()  # warm-up: the fast paths' proofs, first touch of the activation memory
    ours, t_ours = timed(exact)
    with bridge_blocks():
        bridged, t_bridged = timed(exact)
    ref, t_tl = timed(lambda: reference().transformerlens_patching(model, task))
    ours_again, t_again = timed(exact)
    t_ours = (t_ours + t_again) / 2
    diff = np.abs(ours.values[0] - ref).max()
    results.table(
        f"exact resample ablation vs TransformerLens patching ({args.tl_task}, {args.tl_items} items, "
        f"{ours.model.n_layers * ours.model.n_heads} heads)",
        ["scorer", "time"],
        [
            ["TransformerLens get_act_patch_attn_head_out_all_pos", f"{t_tl:.1f} s"],
            ["headlab exact ablation, every re-run block through the bridge", f"{t_bridged:.1f} s"],
            ["headlab exact ablation, unhooked blocks plain (mean of the runs before and after TL)", f"{t_ours:.1f} s"],
            ["**speed-up**", f"**{t_tl / t_ours:.2f}×** (bridge blocks only {t_tl / t_bridged:.2f}×)"],
        ],
        note=f"max |difference| to TransformerLens {diff:.2e}; plain vs bridge blocks "
        f"{np.abs(ours.values - bridged.values).max():.1e}",
    )

    if args.tl_only:
        results.save(args)
        return
    tasks = builtin_tasks(args.items)
    exacts = {}
    for ablation in args.ablations:
        exact, t_exact = timed(
            lambda: headlab.score(model, tasks, method="ablation", ablation=ablation, cache=False, progress=False)
        )
        attribution = lambda: headlab.score(  # noqa: E731
            model, tasks, method="attribution", ablation=ablation, cache=False, progress=False
        )
        attr, t_first = timed(attribution)
        t_warm = float(np.median([timed(attribution)[1] for _ in range(args.repeats)]))
        results.table(
            f"exact ablation vs attribution patching (8 tasks × {args.items} items, {ablation})",
            ["scorer", "time"],
            [
                ["exact ablation", f"{t_exact:.1f} s"],
                ["attribution patching, first call", f"{t_first:.1f} s"],
                [f"attribution patching, median of the next {args.repeats}", f"{t_warm:.1f} s"],
                ["**speed-up (median)**", f"**{t_exact / t_warm:.1f}×** (first call: {t_exact / t_first:.1f}×)"],
            ],
        )
        table = agreement(exact, attr, k=20)
        results.table(
            f"agreement of attribution with exact ablation ({ablation})",
            ["task", "Spearman ρ (all heads)", "ρ over exact top-20", "top-20 overlap (Jaccard)"],
            [
                [name, f"{row['rho']:.2f}", f"{row['rho_top20']:.2f}", f"{row['jaccard_top20']:.2f}"]
                for name, row in table.iterrows()
            ],
        )
        worst = table["rho"].idxmin()
        print(f"\nheads that disagree most in {worst} (rank by exact vs by attribution):")
        print(disagreements(exact, attr, worst, n=5).round(4).to_string(index=False))
        integrated_gradients(results, model, tasks, ablation, exact, t_exact, args.steps)
        if args.layer_steps:
            integrated_gradients(results, model, tasks, ablation, exact, t_exact, args.layer_steps, path="layers")
        screen_then_verify(results, model, tasks, ablation, exact, t_exact)
        exacts[ablation] = exact
    if args.path_steps and "resample" in exacts:
        paths(results, model, tasks, args.path_steps, exacts["resample"])
    results.note(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")
    results.save(args)


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


def integrated_gradients(results, model, tasks, ablation, exact, t_exact, steps, path: str = "activations") -> None:
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
    body = [
        [name, *(f"{rows[m][1].loc[name, 'rho']:.2f} / {rows[m][1].loc[name, 'rho_top20']:.2f}" for m in steps)]
        for name in exact.tasks
    ]
    body.append(
        ["**min over tasks**", *(f"{rows[m][1]['rho'].min():.2f} / {rows[m][1]['rho_top20'].min():.2f}" for m in steps)]
    )
    body.append(["time", *(f"{rows[m][0]:.1f} s" for m in steps)])
    body.append([f"exact ({t_exact:.1f} s) / IG time", *(f"{t_exact / rows[m][0]:.1f}×" for m in steps)])
    results.table(
        f"integrated gradients, path={path}, vs exact ablation ({ablation}): Spearman ρ whole / exact top-20",
        ["task", *(f"m = {m}" for m in steps)],
        body,
    )


def screen_then_verify(results, model, tasks, ablation, exact, t_exact, k: int = 20) -> None:
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
        rows = [
            [
                name,
                int(mask[i].sum()),
                f"{table.loc[name, f'jaccard_top{k}']:.2f}",
                f"{table.loc[name, 'rho']:.2f}",
                len(v.params["disagreements"].get(name, [])),
            ]
            for i, name in enumerate(v.tasks)
        ]
        results.table(
            f"screen, then verify ({ablation}, k = {k}, steps={steps}) vs the full exact sweep",
            ["task", f"heads verified (of {v.values[0].size})", f"top-{k} Jaccard", "ρ whole map", "disagreements"],
            rows,
            note=f"verified: {t:.1f} s, exact: {t_exact:.1f} s — cost {t / t_exact:.2f} of exact "
            f"({t_exact / t:.1f}× cheaper); mean Jaccard {table[f'jaccard_top{k}'].mean():.3f}, "
            f"min {table[f'jaccard_top{k}'].min():.2f}; max |verified − exact| on the verified heads: {off:.1e}",
        )


def paths(results, model, tasks, steps: int, exact) -> None:
    """Integrated gradients along the three paths, plain references, resample: ρ and time against the plain
    reference of exact ablation."""
    from scipy.stats import spearmanr

    ref = reference()
    rows = []
    times = dict.fromkeys(("exact", *ref.PATHS), 0.0)
    for name, task in tasks.items():
        x = exact[name].ravel()
        top = np.argsort(-x, kind="stable")[:20]
        times["exact"] += timed(lambda: ref.per_head_ablation(model, task, "resample"))[1]
        cells = []
        for path in ref.PATHS:
            y, t = timed(lambda: ref.integrated_gradients(model, task, "resample", steps=steps, path=path).ravel())
            times[path] += t
            cells.append(f"{spearmanr(x, y).statistic:.2f} / {spearmanr(x[top], y[top]).statistic:.2f}")
        rows.append([name, *cells])
    rows.append(["time, plain reference", *(f"{times[p]:.1f} s" for p in ref.PATHS)])
    rows.append(
        [
            f"exact's plain reference ({times['exact']:.1f} s) / time",
            *(f"{times['exact'] / times[p]:.1f}×" for p in ref.PATHS),
        ]
    )
    results.table(
        f"path of integrated gradients (resample, m = {steps}, plain reference): ρ vs exact, whole / top-20",
        ["task", *ref.PATHS],
        rows,
    )


if __name__ == "__main__":
    main()
