"""The nnsight engine against the bridge on the embedded model, side by side in one run.

1. Local time: attribution (resample) over the eight tasks, and exact ablation (resample) of one task, on the
   bridge engine and on the nnsight engine (``load_model(engine="nnsight")``), the median of ``--repeats``
   calls after a warm-up; the ratio nnsight / bridge (goals: attribution ≤ 1.2, exact ≤ 2) and max |Δ|.
2. Under nnsight's own simulation of a remote run (``load_model(engine="ndif", simulate=True)``): per task map,
   the requests sent (goal: one per task for attribution), the request's bytes as the client would POST them
   (``RequestModel.serialize``, zstd-compressed as ``CONFIG.API.COMPRESS``) and the result's bytes (the saved
   values, ``torch.save`` then zstd; goal ≤ 100 kB per task).

    python benchmarks/bench_engines.py [--items 8] [--exact-items 4] [--repeats 3] [--no-results]

Writes benchmarks/results/bench_engines.json (docs/performance.md).
"""

from __future__ import annotations

import io

from common import Results, builtin_tasks, offline, parser, timed_median

offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    ap = parser(__doc__, repeats=3)
    ap.add_argument("--items", type=int, default=8, help="items per task for attribution")
    ap.add_argument("--exact-items", type=int, default=4, help="items of the exact-ablation task")
    args = ap.parse_args()
    results = Results(
        "bench_engines",
        "The nnsight engine against the bridge",
        "Local time of the same score() call on the bridge and on the nnsight engine (embedded model, median of "
        "the repeats after a warm-up), and under nnsight's simulation of NDIF the requests and bytes per task map.",
    )

    import zstandard
    from nnsight.intervention.backends.local import LocalSimulationBackend
    from nnsight.schema.request import RequestModel

    from headlab import load_model, score

    bridge, traced = load_model(), load_model(engine="nnsight")
    tasks = list(builtin_tasks(args.items).values())
    exact_task = list(builtin_tasks(args.exact_items, ["Math Calculation"]).values())
    kw = dict(cache=False, progress=False, ablation="resample")

    rows = []
    for label, run_tasks, method, goal in (
        (f"attribution, 8 tasks × {args.items} items, resample", tasks, "attribution", 1.2),
        (f"exact ablation, 1 task × {args.exact_items} items, resample", exact_task, "ablation", 2.0),
    ):
        a, t_bridge = timed_median(
            lambda run_tasks=run_tasks, m=method: score(bridge, run_tasks, method=m, **kw), args.repeats
        )
        b, t_nn = timed_median(
            lambda run_tasks=run_tasks, m=method: score(traced, run_tasks, method=m, **kw), args.repeats
        )
        delta = float(np.abs(a.per_example - b.per_example).max())
        rows.append(
            [label, f"{t_bridge:.1f} s", f"{t_nn:.1f} s", f"{t_nn / t_bridge:.1f}", f"≤ {goal:g}", f"{delta:.1e}"]
        )
    results.table(
        f"local time, median of {args.repeats} (torch threads {torch.get_num_threads()})",
        ["", "bridge", "nnsight", "ratio", "goal", "max \\|Δ\\|"],
        rows,
    )

    sent = []
    plain_call = LocalSimulationBackend.__call__

    def measured(self, tracer):
        sent.append(len(RequestModel.serialize(tracer, compress=True)))
        return plain_call(self, tracer)

    LocalSimulationBackend.__call__ = measured
    remote = load_model(engine="ndif", simulate=True)
    rows = []
    for label, task, method in (
        (f"attribution, {tasks[0].name} × {args.items} items", tasks[0], "attribution"),
        (f"exact ablation, {exact_task[0].name} × {args.exact_items} items", exact_task[0], "ablation"),
    ):
        sent.clear()
        out = score(remote, [task], method=method, **kw)
        buf = io.BytesIO()
        torch.save({"scores": torch.tensor(out.per_example[0]), "metric": torch.tensor(np.asarray(out.baseline))}, buf)
        result = len(zstandard.ZstdCompressor(level=6).compress(buf.getvalue()))
        rows.append([label, len(sent), f"{sum(sent) / 1e3:.1f} kB", f"{result / 1e3:.1f} kB", "1 request, ≤ 100 kB"])
    LocalSimulationBackend.__call__ = plain_call
    results.table(
        "under nnsight's simulation of NDIF, per task map",
        ["", "requests", "request (zstd)", "result", "goal"],
        rows,
    )
    results.save(args)


if __name__ == "__main__":
    main()
