"""Command line: ``python -m headlab {demo,score,eval}`` (also the ``headlab`` script).

demo   the main job on the embedded model: model card, greedy answer, attribution scores of the eight
       tasks, a table of top heads and the heatmap grid (out/heatmaps.png).
score  ``--model --method --ablation --metric --tasks --items --out`` and the method's own options: one flag
       per option of every registered method (``Scorer.options``, help from ``Scorer.option_help``; e.g.
       ``--steps 4``, ``--steps 1,2``, ``--path layers``, ``--probe logistic``), refused in one line by a method
       that does not take it. Writes scores.npz and top_heads.txt (for verified, with the heads where the
       screen was wrong).
       ``--engine nnsight`` (here) or ``ndif`` (NDIF's GPUs: a Hub id, NDIF_API_KEY) for the methods whose
       ``Scorer.engines`` name them (``docs/concepts/04-models-and-engines.md``).
       Outputs go to --out (``~`` is the home folder) through ``headlab.files``: never over an earlier file
       without --overwrite, each written whole or not at all.
eval   ``--tasks --items``: the clean behaviour table of tasks: n, greedy accuracy, preference rate, log-prob,
       logit diff.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["OUTPUTS", "greedy_answer", "load", "main", "summary"]


def _tasks(spec: str, cogqa: str | None):
    from .tasks import builtin, load_cogqa

    if cogqa:
        tasks = load_cogqa(cogqa)
    else:
        tasks = builtin()
    if spec == "all":
        return tasks
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    if not wanted:
        raise SystemExit(f"headlab: --tasks {spec!r} names no task; choose from {list(tasks)} or 'all'")
    unknown = [w for w in wanted if w not in tasks]
    if unknown:
        import difflib

        close = [m for w in unknown for m in difflib.get_close_matches(w, list(tasks), 1, 0.6)]
        hint = f" (did you mean {close}?)" if close else ""
        raise SystemExit(f"headlab: unknown task(s) {unknown}{hint}; choose from {list(tasks)} or 'all'")
    return {w: tasks[w] for w in dict.fromkeys(wanted)}


def greedy_answer(model, prompt: str, max_new_tokens: int = 3, top: int = 5) -> tuple[str, list[tuple[str, float]]]:
    """Greedy continuation of ``prompt`` and the top next tokens with probabilities."""
    import torch

    tok = model.tokenizer
    ids = tok(prompt, return_tensors="pt").input_ids
    ranked = []
    with torch.no_grad():
        for step in range(max_new_tokens):
            logits = model(ids)[0, -1]
            if step == 0:
                p = logits.softmax(-1)
                vals, idx = p.topk(top)
                ranked = [(tok.decode([int(i)]), float(v)) for v, i in zip(vals, idx)]
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    n_prompt = len(tok(prompt).input_ids)
    return tok.decode(ids[0, n_prompt:]), ranked


CLIP_PERCENTILE = 99.0  # the picture's colour scale ends at this percentile of |share|


def load(args):
    """The model of ``--model``, ``--device``, ``--dtype`` and ``--engine`` (demo and eval: the bridge)."""
    from .models import load_model

    if args.engine != "bridge":
        return load_model(args.model, engine=args.engine, dtype=args.dtype)
    return load_model(args.model, device=args.device, dtype=args.dtype)


def cmd_demo(args) -> int:
    from .models import describe

    t0 = time.perf_counter()
    model = load(args)
    print(f"# headlab demo — loaded in {time.perf_counter() - t0:.1f} s")
    print(describe(model).card())
    prompt = "The capital of France is"
    answer, ranked = greedy_answer(model, prompt)
    print(f"\n{prompt!r} → {answer!r} (greedy)")
    for rank, (text, p) in enumerate(ranked, 1):
        print(f"  {rank}. {text!r:<12} p={p:.3f}")
    return _score_and_write(model, args)


OUTPUTS = ("scores.npz", "top_heads.txt", "heatmaps.png")


def _check_out(args) -> None:
    """Refuse, before any model loads, an --out that is empty, a file, under a file, unwritable, or holds
    earlier outputs (unless --overwrite); ``~`` is the home folder. Nothing is created here: the folder is made
    when the first output is written."""
    import tempfile

    if not args.out.strip():
        raise SystemExit(f"headlab: --out {args.out!r} is an empty path: name a folder, e.g. --out out")
    out = args.out_path = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise SystemExit(f"headlab: --out {args.out} is a file: name a folder")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise SystemExit(f"headlab: --out {args.out} is under {existing}, which is a file: name a folder")
    odd = [name for name in OUTPUTS if (out / name).exists() and not (out / name).is_file()]
    if odd:
        raise SystemExit(
            f"headlab: --out {args.out} holds {', '.join(odd)}, which is not a file (a folder?): move it away, or "
            "pass another --out"
        )
    taken = [name for name in OUTPUTS if (out / name).exists()]
    if taken and not args.overwrite:
        raise SystemExit(
            f"headlab: --out {args.out} already holds {', '.join(taken)}: pass --overwrite, or another --out"
        )
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        raise SystemExit(
            f"headlab: cannot write to --out {args.out} ({existing}: {err.strerror or err}): name another folder"
        ) from None


def _score_and_write(model, args) -> int:
    from .files import write_file
    from .scoring import score

    tasks = args.task_objects
    t0 = time.perf_counter()
    scores = score(
        model,
        tasks,
        method=args.method,
        ablation=args.ablation,
        metric=args.metric,
        progress=not args.quiet,
        **args.options,
    )
    took = time.perf_counter() - t0
    out = args.out_path
    scores.save(out / "scores.npz", overwrite=args.overwrite)
    table = scores.top_table(k=args.top) + _disagreements_text(scores, args.top)
    what = f"--out {args.out}"
    write_file(out / "top_heads.txt", (table + "\n").encode(), overwrite=args.overwrite, what=what)
    print(
        f"\n{summary(scores, args.options)}, {_count(len(scores.tasks))} in {took:.1f} s"
        + ("" if scores.verified is None else f"; {int(scores.verified.sum())} of {scores.verified.size} values exact")
    )
    print(table)
    try:
        from .viz.plot import heatmap_grid, save
    except ImportError:  # the plotting module is optional for the CLI
        return 0
    # signed share, the scale clipped at the 99th percentile of |share| so that more than the top few heads
    # show; the cells beyond carry ▲ / ▼ and the end ticks a "+"
    clip = float(np.percentile(np.abs(scores.normalized("share")), CLIP_PERCENTILE))
    fig = heatmap_grid(scores, vmax=clip if clip > 0 else None)
    save(fig, out / "heatmaps.png", overwrite=args.overwrite)
    print(f"\nwrote {out / 'scores.npz'}, {out / 'top_heads.txt'}, {out / 'heatmaps.png'}")
    return 0


def _disagreements_text(scores, n: int) -> str:
    """For a verified map, the verified heads where its screen was wrong (a sign flip, or a rank moved by more
    than 10): a count and the ``n`` largest |exact| per task; nothing for other methods."""
    if scores.verified is None:
        return ""
    found = scores.disagreements()
    head = f"\n\nscreen disagreements: {len(found)} of {int(scores.verified.sum())} verified heads"
    if found.empty:
        return head
    lines = [
        head + f" (sign flipped, or rank moved by more than 10; the {n} largest |exact| per task)",
        f"{'task':<24} {'layer':>5} {'head':>4} {'screen':>10} {'rank':>5} {'exact':>10} {'rank':>5}  why",
    ]
    for task, rows in found.groupby("task", sort=False):
        for r, row in enumerate(rows.head(n).itertuples()):
            lines.append(
                f"{task if r == 0 else '':<24} {row.layer:>5} {row.head:>4} {row.attribution:>10.4f} "
                f"{row.attribution_rank:>5} {row.exact:>10.4f} {row.exact_rank:>5}  {row.why}"
            )
    return "\n".join(lines)


def summary(scores, options: dict) -> str:
    """What ran, after the counterfactual fallbacks (``params["per_task"]``): ``attribution/resample (steps=4)
    scores, metric logit_diff``; where tasks differ, each choice with its count, e.g. ``resample (5 tasks), mean
    (3 tasks: counterfactuals missing)``. A method without an ablation or a metric names none."""
    recorded = scores.params.get("per_task") or {}
    per_task = {t: recorded.get(t, scores.params) for t in scores.tasks}

    def ran(key: str) -> str | None:
        counts: dict = {}
        for choice in per_task.values():
            counts[choice.get(key)] = counts.get(choice.get(key), 0) + 1
        if len(counts) == 1:
            return next(iter(counts))
        asked = scores.params.get(key)
        return ", ".join(
            f"{value} ({_count(n)}{'' if value == asked else ': counterfactuals missing'})"
            for value, n in sorted(counts.items(), key=lambda kv: kv[0] != asked)
        )

    ablation, metric = ran("ablation"), ran("metric")
    text = scores.method + (f"/{ablation}" if ablation else "") + _options_text(options) + " scores"
    return text + (f", metric {metric}" if metric else "")


def _count(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"


def _options_text(options: dict) -> str:
    """`` (steps=4, path=layers)`` for the summary line, or nothing."""
    return " (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else ""


def cmd_score(args) -> int:
    return _score_and_write(load(args), args)


def cmd_eval(args) -> int:
    from .metrics import evaluate, summary_table

    model = load(args)
    print(summary_table([evaluate(model, t).summary() for t in args.task_objects.values()]))
    return 0


def option_value(text: str):
    """A method option's flag text as a value: "none" → None, "true"/"false" → bool, an int, a float, a
    comma-separated list of those (``1,2`` → [1, 2]), else the text itself; the method's ``check`` validates it."""
    if "," in text:
        return [option_value(part.strip()) for part in text.split(",")]
    lowered = text.strip().lower()
    if lowered in ("none", "true", "false"):
        return {"none": None, "true": True, "false": False}[lowered]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def add_method_options(parser) -> dict[str, str]:
    """One flag per option name of every registered method (``Scorer.options``), its help each method's
    ``option_help`` line and default; returns option name → the ``args`` attribute holding it (None: not given).
    A new method's options reach the CLI with no change here."""
    from . import scorers

    lines: dict[str, list[str]] = {}
    for name in scorers.names():
        scorer = scorers.get(name)
        for option, default in scorer.options.items():
            what = scorer.option_help.get(option)
            lines.setdefault(option, []).append(f"{name}: {f'{what} ' if what else ''}(default {default})")
    dests = {}
    for option, helps in lines.items():
        dests[option] = f"option_{option}"
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            dest=dests[option],
            type=option_value,
            default=None,
            metavar="VALUE",
            help="; ".join(helps).replace("%", "%%"),
        )
    return dests


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``headlab: ...``), like every other error of the CLI."""

    def error(self, message):
        self.exit(2, f"headlab: {message} (see {self.prog} -h)\n")


def _check_args(args) -> None:
    """Refuse, before anything loads, what argparse lets through: counts below 1, an empty --model or --cogqa,
    and a --device or --dtype that cannot run a model (``meta``: ``models.pick_device``)."""
    from .models import pick_device, pick_dtype

    if args.top < 1:
        raise SystemExit(f"headlab: --top must be a positive number of heads, got {args.top}")
    if args.items is not None and args.items < 1:
        raise SystemExit(f"headlab: --items must be a positive number of items per task, got {args.items}")
    if not args.model.strip():
        raise SystemExit(
            f"headlab: --model {args.model!r} is empty: name the embedded model (smollm2-135m), a Hugging Face id "
            "like org/name, or a folder"
        )
    if args.cogqa is not None and not args.cogqa.strip():
        raise SystemExit(
            f"headlab: --cogqa {args.cogqa!r} is empty: give the path to cogqa_train.json, or leave --cogqa out "
            "for the built-in tasks"
        )
    pick_dtype(args.dtype, pick_device(args.device))


def main(argv=None) -> int:
    from . import scorers
    from .engine.nnsight_engine import ENGINES
    from .metrics import METRICS
    from .scoring import ABLATIONS

    parser = Parser(prog="headlab", description="Map which attention heads matter for which task.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = Parser(add_help=False)
    common.add_argument(
        "--model", default="smollm2-135m", help="alias of the embedded model, a Hugging Face id or a local folder"
    )
    common.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    common.add_argument(
        "--dtype", default="auto", help="auto (the checkpoint's on a GPU, float32 on a CPU), float32, bfloat16, float16"
    )
    common.add_argument("--out", default="out", help="output folder (~ is the home folder)")
    common.add_argument("--top", type=int, default=5, help="heads per task in the text table")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--overwrite", action="store_true", help="replace earlier outputs in --out")
    tasks = Parser(add_help=False)
    tasks.add_argument("--tasks", default="all", help="'all' or comma-separated task names")
    tasks.add_argument("--cogqa", default=None, help="path to cogqa_train.json instead of the built-in tasks")
    tasks.add_argument("--items", type=int, default=None, help="each task's first N items (default: all)")
    sub.add_parser("demo", parents=[common], help="the main job on the embedded model").set_defaults(
        method="attribution",
        ablation="resample",
        metric="logit_diff",
        tasks="all",
        cogqa=None,
        items=None,
        engine="bridge",
    )
    p = sub.add_parser("score", parents=[common, tasks], help="score heads and write scores.npz + top_heads.txt")
    p.add_argument(
        "--method",
        default="attribution",
        choices=scorers.names(),
        help="; ".join(f"{n}: {scorers.get(n).summary}" for n in scorers.names()),
    )
    p.add_argument("--ablation", default="resample", choices=ABLATIONS)
    p.add_argument("--metric", default="logit_diff", choices=METRICS)
    method_options = add_method_options(p)
    p.add_argument(
        "--engine",
        default="bridge",
        choices=ENGINES,
        help="bridge (TransformerLens, every method); nnsight (here) or ndif (NDIF's GPUs, a Hub id and NDIF_API_KEY): "
        + ", ".join(n for n in scorers.names() if "ndif" in scorers.get(n).engines),
    )
    sub.add_parser("eval", parents=[common, tasks], help="clean accuracy / preference table of the tasks").set_defaults(
        engine="bridge"
    )
    args = parser.parse_args(argv)
    from .engine.forward import UnsupportedModel
    from .models import ModelLoadError
    from .tasks import TaskError

    args.options = {}  # the method's own options: only score has them
    if args.command == "score":
        given = {name: getattr(args, dest) for name, dest in method_options.items()}
        args.options = {name: value for name, value in given.items() if value is not None}
    try:
        _check_args(args)
        args.task_objects = _tasks(args.tasks, args.cogqa)  # a typo fails here, before the model loads
        if args.items is not None:
            args.task_objects = {name: t.subset(args.items) for name, t in args.task_objects.items()}
        if args.command == "score":
            scorers.get(args.method).check(args.options)  # so do a method's wrong options
        if args.command in ("demo", "score"):
            _check_out(args)
        return {"demo": cmd_demo, "score": cmd_score, "eval": cmd_eval}[args.command](args)
    except (ModelLoadError, TaskError, UnsupportedModel, ValueError, OSError) as err:
        print(f"headlab: {err}", file=sys.stderr)
        return 2
