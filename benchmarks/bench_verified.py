"""How screen-then-verify's saving grows with the number of heads, measured side by side in one run.

Random-weight Hugging Face Llamas (``headlab.models.tiny_hf``, byte tokenizer) of growing shape, up to
24 layers × 16 heads by default (``--shapes ... 32x32``: Llama-3.1-8B's 1,024 heads, about 18 min more): per
shape, the full exact zero-ablation sweep and ``method="verified"`` (k = 20) on the same tasks — time, the
ratio, heads verified per task, and the verified map's top-20 overlap with the exact one; and integrated
gradients one layer at a time (``steps=2, path="layers"``), whose cost against exact falls as 1 / heads per layer.
Exact ablation costs one re-run per head; verification re-runs only the candidates, whose number depends on the
screen's uncertainty, not on the model's size.

A trained model's map is sparse — a few strong heads, many weak ones — and plain random weights give a flat
one, where every head's interval reaches the k-th score. ``--spread σ`` (default 1.0) multiplies each head's
output weights (its columns of W_O) by exp(σ · N(0, 1)), seeded: the map's spread, the standard deviation of
log |score| over the heads, printed per shape, then comes near the embedded model's (1.7–2.0 in its 8 tasks);
``--spread 0`` is plain random weights.

With ``--embedded-items``: how it grows with the number of items instead, on the embedded model (resample, the
eight tasks): more items narrow the screen's intervals, so fewer heads are candidates, and the fixed cost of
each batch's clean and counterfactual runs is spread over more items.

    python benchmarks/bench_verified.py [--shapes 6x8 12x8 24x16] [--spread 1.0] [--d-model 256]
                                        [--tasks 4] [--items 8] [--embedded-items 8 24] [--no-results]

Writes benchmarks/results/bench_verified.json (docs/performance.md).
"""

from __future__ import annotations

from common import Results, builtin_tasks, embedded_model, offline, parser, test_models, timed

offline()

import numpy as np  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--shapes", nargs="+", default=["6x8", "12x8", "24x16"], help="layers x heads")
    ap.add_argument("--spread", type=float, default=1.0, help="σ of the heads' log output scale (0: plain random)")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--tasks", type=int, default=4, help="builtin tasks (the first n)")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--embedded-items", type=int, nargs="*", default=[], help="items per task on the embedded model")
    args = ap.parse_args()
    results = Results(
        "bench_verified",
        "How screen-then-verify's saving grows",
        "method='verified' (k = 20) against the full exact sweep, side by side: on random-weight Llamas of growing "
        "shape whose heads' output scales are spread as a trained map's (zero ablation), and on the embedded model "
        "with more items per task (resample); also integrated gradients one layer at a time (m = 2).",
    )
    if args.embedded_items:
        by_items(results, args.embedded_items, args.k)
        if args.shapes == ap.get_default("shapes"):
            results.save(args)
            return

    import headlab
    from headlab.analysis.compare import agreement

    tiny_hf, byte_tokenizer = test_models()
    tasks = dict(list(builtin_tasks(args.items).items())[: args.tasks])
    title = (
        f"verified (k = {args.k}) vs full exact zero ablation, random-weight Llamas, d_model {args.d_model}, "
        f"{len(tasks)} tasks × {args.items} items, heads' output scales exp({args.spread} · N(0, 1))"
    )
    headers = [
        "layers × heads", "heads", "map spread (sd log \\|score\\|)", "exact", "verified", "cost of exact",
        "verified per task (median; range)", "top-20 Jaccard (min)", "one layer at a time, m = 2", "its cost of exact",
    ]  # fmt: skip
    print(f"## {title}\n\n| " + " | ".join(headers) + " |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for shape in args.shapes:
        L, H = (int(x) for x in shape.split("x"))
        hf = spread_heads(tiny_hf(L, H, args.d_model, n_kv_heads=max(1, H // 4)), args.spread)
        model = headlab.load_model(hf, tokenizer=byte_tokenizer())
        run = lambda method, **kw: headlab.score(  # noqa: E731
            model, tasks, method=method, ablation="zero", cache=False, progress=False, **kw
        )
        run("attribution")  # the first touch of the process's activation memory is paid by neither
        exact, t_exact = timed(lambda: run("ablation"))
        verified, t_verified = timed(lambda: run("verified", k=min(args.k, L * H)))
        _, t_layers = timed(lambda: run("attribution", steps=2, path="layers"))  # integrated gradients per layer
        jaccard = agreement(exact, verified, k=min(args.k, L * H))[f"jaccard_top{min(args.k, L * H)}"]
        counts = verified.verified.sum((1, 2))
        row = [
            f"{L} × {H}", f"{L * H:,}", map_spread(exact.values), f"{t_exact:.1f} s", f"{t_verified:.1f} s",
            f"{t_verified / t_exact:.2f} ({t_exact / t_verified:.1f}× cheaper)",
            f"{int(np.median(counts))} ({counts.min()}–{counts.max()})", f"{jaccard.mean():.2f} ({jaccard.min():.2f})",
            f"{t_layers:.1f} s", f"{t_layers / t_exact:.2f}",
        ]  # fmt: skip
        print("| " + " | ".join(row) + " |", flush=True)
        rows.append(row)
    results.table(title, headers, rows, echo=False)
    results.save(args)


def spread_heads(hf_model, sigma: float, seed: int = 1):
    """``hf_model`` (a Llama) with each head's W_O columns scaled by exp(σ · N(0, 1)): a sparse map, as trained."""
    import torch

    cfg = hf_model.config
    d_head = cfg.hidden_size // cfg.num_attention_heads
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in hf_model.model.layers:
            scale = torch.exp(sigma * torch.randn(cfg.num_attention_heads, generator=g))
            layer.self_attn.o_proj.weight.mul_(scale.repeat_interleave(d_head)[None])
    return hf_model


def map_spread(values: np.ndarray) -> str:
    """Per task (task, layer, head), the standard deviation of log |score| over the heads: the range over tasks."""
    sds = [np.log(np.abs(v[v != 0])).std() for v in values]
    return f"{min(sds):.2f}–{max(sds):.2f}"


def by_items(results, item_counts: list[int], k: int) -> None:
    """Verified vs the full exact resample sweep on the embedded model, per number of items per task."""
    import headlab
    from headlab.analysis.compare import agreement

    model, _ = embedded_model()
    run = lambda tasks, method, **kw: headlab.score(  # noqa: E731
        model, tasks, method=method, ablation="resample", cache=False, progress=False, **kw
    )
    run(builtin_tasks(2), "verified", k=k)  # the fast paths' proofs, first touch
    rows = []
    for n in item_counts:
        tasks = builtin_tasks(n)
        exact, t_exact = timed(lambda tasks=tasks: run(tasks, "ablation"))
        verified, t_verified = timed(lambda tasks=tasks: run(tasks, "verified", k=k))
        jaccard = agreement(exact, verified, k=k)[f"jaccard_top{k}"]
        counts = verified.verified.sum((1, 2)).tolist()
        rows.append(
            [
                n, f"{t_exact:.1f} s", f"{t_verified:.1f} s",
                f"{t_verified / t_exact:.2f} ({t_exact / t_verified:.1f}× cheaper)",
                ", ".join(map(str, counts)), f"{jaccard.mean():.3f} ({jaccard.min():.2f})",
            ]
        )  # fmt: skip
    results.table(
        f"verified (k = {k}) vs full exact resample ablation, the embedded model, 8 tasks",
        [
            "items per task",
            "exact",
            "verified",
            "cost of exact",
            "verified per task (of 270)",
            "top-20 Jaccard: mean (min)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
