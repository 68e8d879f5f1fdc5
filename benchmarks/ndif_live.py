"""The live NDIF check (``make test-ndif``): Llama-3.1-8B mapped on NDIF's GPUs from this machine. Needs
``NDIF_API_KEY``, the network, and the model's config and tokenizer in the local Hugging Face cache (no
weights). It is never part of ``make test``, and it has not run yet (docs/concepts/04-models-and-engines.md says
so until it has).

1. Attribution (resample) over the eight built-in tasks: one request per task.
2. Exact ablation (resample) of one layer's 32 heads on Math Calculation.
3. Resume: attribution of one task is submitted and the wait stopped at the job's first state (as Ctrl-C or the
   explorer's Cancel would); the same call again fetches that job (0 new submissions) and gives the same map.

Prints, per part, the wall time, the requests sent and the request and result bytes.

    NDIF_API_KEY=... python benchmarks/ndif_live.py [--model meta-llama/Llama-3.1-8B] [--items 8] [--layer 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="meta-llama/Llama-3.1-8B")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--layer", type=int, default=16)
    args = ap.parse_args()
    if not os.environ.get("NDIF_API_KEY"):
        raise SystemExit("make test-ndif: set NDIF_API_KEY (login.ndif.us); nothing was sent")

    from nnsight import CONFIG
    from nnsight.intervention.backends.remote import RemoteBackend

    from headlab import load_model, score
    from headlab.engine import nnsight_engine
    from headlab.engine.ndif import Requests
    from headlab.engine.progress import Cancelled, watching
    from headlab.metrics import encode
    from headlab.tasks import builtin

    CONFIG.APP.DEBUG = True  # the client then logs "[remote] payload: N bytes" and "[remote] result: N bytes"
    calls = []
    plain = RemoteBackend.__call__

    def counted(self, *a, **k):
        calls.append(1)
        return plain(self, *a, **k)

    RemoteBackend.__call__ = counted
    model = load_model(args.model, engine="ndif")
    tasks = [t.subset(args.items) for t in builtin().values()]
    start = time.perf_counter()
    maps = score(model, tasks, method="attribution", cache=False, progress=True)
    print(f"attribution, 8 tasks × {args.items}: {time.perf_counter() - start:.1f} s, {len(calls)} requests")
    print(maps.top_table(k=5))
    calls.clear()
    task = builtin(["Math Calculation"])["Math Calculation"].subset(args.items)
    enc = encode(task, model.tokenizer)
    start = time.perf_counter()
    swept = nnsight_engine.ablation(
        model, enc.subset(enc.cf_ok.nonzero().flatten()), "resample", Requests(model), layers=[args.layer]
    )
    drops = np.concatenate([d for _, d, _ in swept], axis=1)
    print(f"exact ablation of layer {args.layer}: {time.perf_counter() - start:.1f} s, {len(calls)} requests")
    print("per head:", drops.mean(0).round(3).tolist())

    calls.clear()
    with tempfile.TemporaryDirectory() as folder:

        def stop(desc, done, total):
            if "NDIF job" in desc:
                raise Cancelled("stopped")

        try:
            with watching(stop):
                score(model, [task], cache=folder, progress=False)
        except Cancelled:
            pass
        submitted = len(calls)
        again = score(model, [task], cache=folder, progress=False)
        same = np.allclose(again.values, maps.select(tasks=[task.name]).values, atol=1e-3)
        print(f"resume: {submitted} submitted, then {len(calls) - submitted} on the second call; same map: {same}")


if __name__ == "__main__":
    main()
