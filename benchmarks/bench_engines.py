"""The nnsight engine against the bridge on the embedded model, side by side in one run.

1. Local time: attribution (resample) over the eight tasks, and exact ablation (resample) of one task, on the
   bridge engine and on the nnsight engine (``load_model(engine="nnsight")``), the median of ``--repeats``
   calls after a warm-up; the ratio nnsight / bridge (goals: attribution ≤ 1.2, exact ≤ 2) and max |Δ|.
2. Under nnsight's own simulation of a remote run (``load_model(engine="ndif", simulate=True)``): per task map,
   the requests sent (goal: one per task for attribution), the request's bytes as the client would POST them
   (``RequestModel.serialize``, zstd-compressed as ``CONFIG.API.COMPRESS``) and the result's bytes (the saved
   values, ``torch.save`` then zstd; goal ≤ 100 kB per task).

    python benchmarks/bench_engines.py [--items 8] [--exact-items 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def timed(fn, repeats: int):
    fn()  # warm-up: proofs, first touch of memory
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8, help="items per task for attribution")
    ap.add_argument("--exact-items", type=int, default=4, help="items of the exact-ablation task")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import zstandard
    from nnsight.intervention.backends.local import LocalSimulationBackend
    from nnsight.schema.request import RequestModel

    from headlab import load_model, score
    from headlab.tasks import builtin

    bridge, traced = load_model(), load_model(engine="nnsight")
    tasks = [t.subset(args.items) for t in builtin().values()]
    exact_task = [builtin(["Math Calculation"])["Math Calculation"].subset(args.exact_items)]
    kw = dict(cache=False, progress=False, ablation="resample")

    print(f"# 1. local time, median of {args.repeats} (torch threads {torch.get_num_threads()})")
    print(f"{'method':<34} {'bridge s':>9} {'nnsight s':>10} {'ratio':>6} {'max |Δ|':>9}  goal")
    for label, run_tasks, method, goal in (
        (f"attribution, 8 tasks × {args.items}", tasks, "attribution", 1.2),
        (f"exact ablation, 1 task × {args.exact_items}", exact_task, "ablation", 2.0),
    ):
        a, t_bridge = timed(
            lambda run_tasks=run_tasks, m=method: score(bridge, run_tasks, method=m, **kw), args.repeats
        )
        b, t_nn = timed(lambda run_tasks=run_tasks, m=method: score(traced, run_tasks, method=m, **kw), args.repeats)
        delta = float(np.abs(a.per_example - b.per_example).max())
        print(f"{label:<34} {t_bridge:>9.2f} {t_nn:>10.2f} {t_nn / t_bridge:>6.2f} {delta:>9.1e}  ≤ {goal}")

    print("\n# 2. under nnsight's simulation of NDIF, per task map")
    sent = []
    plain_call = LocalSimulationBackend.__call__

    def measured(self, tracer):
        sent.append(len(RequestModel.serialize(tracer, compress=True)))
        return plain_call(self, tracer)

    LocalSimulationBackend.__call__ = measured
    remote = load_model(engine="ndif", simulate=True)
    print(f"{'method':<34} {'requests':>8} {'request kB':>10} {'result kB':>9}  goal")
    for label, task, method in (
        (f"attribution, {tasks[0].name} × {args.items}", tasks[0], "attribution"),
        (f"exact ablation, {exact_task[0].name} × {args.exact_items}", exact_task[0], "ablation"),
    ):
        sent.clear()
        out = score(remote, [task], method=method, **kw)
        buf = io.BytesIO()
        torch.save({"scores": torch.tensor(out.per_example[0]), "metric": torch.tensor(np.asarray(out.baseline))}, buf)
        result = len(zstandard.ZstdCompressor(level=6).compress(buf.getvalue()))
        print(f"{label:<34} {len(sent):>8} {sum(sent) / 1e3:>10.1f} {result / 1e3:>9.1f}  1 request, ≤ 100 kB")
    LocalSimulationBackend.__call__ = plain_call


if __name__ == "__main__":
    main()
