"""The explorer's cost model against real runs: ``scoring.estimate`` (each scorer's ``cost`` in block-token
passes over the model's measured rate) next to the measured time of the same ``score()`` call, side by side.

Run: ``python benchmarks/bench_estimate.py [method ...] [--no-results]`` (embedded model, two built-in tasks of 8
items, no cache; methods, e.g. ``probe``, to run only those). Writes benchmarks/results/bench_estimate.json.
Prints, per method, the estimate, the measured time and their ratio. The explorer asks before a job it
estimates above 30 s; a ratio within about 2× either way is what that needs.
"""

from __future__ import annotations

from common import Results, builtin_tasks, offline, parser, timed

offline()

CASES = [
    ("attribution", {"ablation": "resample"}),
    ("attribution", {"ablation": "resample", "steps": 8}),
    ("verified", {"ablation": "resample"}),
    ("verified", {"ablation": "zero"}),
    ("ablation", {"ablation": "zero"}),
    ("ablation", {"ablation": "resample"}),
    ("probe", {"probe": "logistic"}),
    ("probe", {"probe": "mlp"}),
]
TASKS = ["Retrieval", "Math Calculation"]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("methods", nargs="*", help="run only these methods, e.g. probe")
    args = ap.parse_args()
    results = Results(
        "bench_estimate",
        "The explorer's cost model",
        "scoring.estimate (each scorer's cost over the model's measured rate) against the measured time of the "
        "same score() call: the explorer asks before a job estimated above 30 s, so a ratio within 2× is the goal.",
    )

    import headlab
    from headlab import scoring

    model = headlab.load_model()
    tasks = list(builtin_tasks(8, TASKS).values())
    rows = []
    for method, kwargs in CASES:
        if args.methods and method not in args.methods:
            continue
        guess = scoring.estimate(model, tasks, method=method, cache=False, **kwargs)
        _, took = timed(
            lambda m=method, kw=kwargs: scoring.score(model, tasks, method=m, cache=False, progress=False, **kw)
        )
        label = " · ".join([method, *map(str, kwargs.values())])
        rows.append([label, f"{guess.seconds:.1f} s", f"{took:.1f} s", f"{took / guess.seconds:.2f}"])
    results.table(
        f"{' and '.join(TASKS)} × 8 items, no cache", ["method", "estimate", "measured", "measured / estimate"], rows
    )
    results.save(args)


if __name__ == "__main__":
    main()
