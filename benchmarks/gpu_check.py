"""One prepared check of headlab on a GPU: equality with the CPU, and speed and memory at 3B–9B shapes.

What it measures:

(a) CPU vs device equality of every scorer: attribution and exact ablation × zero / mean / resample on a tiny
    Hugging Face Llama (``tiny_hf(n_layers=3, n_heads=4, d_model=32)`` with ``byte_tokenizer()``), two small
    tasks with counterfactuals, scored by a float32 copy on the CPU and one on the device: max |difference| per
    case, passing at ≤ 1e-4 · max(1, max |score|); and a bfloat16 copy on the device against the float32 CPU
    scores, as Spearman ρ over every (task, layer, head).
(b) A random ``LlamaForCausalLM`` with Llama-3.1-8B's exact config, built on the device in bfloat16 (no CPU
    copy), behind the SmolLM2 tokenizer: (i) attribution (resample) over the 8 built-in tasks × 48 items,
    (ii) exact resample ablation over one task's 8 items. Seconds (``torch.cuda.synchronize()`` around),
    peak GPU memory (``torch.cuda.max_memory_allocated``, reset before each), tokens, and the share of the
    FLOP limit (790 TFLOP/s, the bf16 matrix rate measured on this H200): 2 · n_params · tokens per forward,
    summed over forwards, / seconds / 790e12, with n_params the decoder blocks' parameters (headlab never
    runs the full unembedding: its metric reads two rows). Attribution counts the clean and counterfactual
    forwards, not the backward. Exact ablation counts what its sweep re-runs: for every (layer l, head),
    blocks ≥ l over the task's tokens — Σ over heads of 2 · params(blocks ≥ l) · tokens — plus the clean and
    counterfactual passes.
(c) The same attribution at Yi-1.5-9B's shape and Llama-3.2-3B's (tied embeddings).

Goals (on the H200): 8B attribution for all 8 tasks ≤ 60 s; exact ablation ≥ 30% of the FLOP limit. Part (a)
failing its tolerance, or any part raising, makes the exit code 1; a goal missed is reported, not an error.

On the device machine (Python 3.12 with torch 2.11, transformers 5.17 and accelerate; no transformer-lens, no
headlab, no registry): ``make gpu-carry`` here fills the git-ignored ``carry/`` (about 6 MiB) with wheels of
transformer-lens 4.3.0 and of what it imports that the image lacks — datasets (imported by
``transformer_lens.utilities``), dill and multiprocess (imported by datasets) — plus einops, jaxtyping and
wadler-lindig in case the image drops them, and with the SmolLM2 tokenizer files (not the weights). Then
the device tool's ``run`` with carry ``["carry"]`` and timeout_s 540::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py

It is meant to finish in under 8 minutes, set-up included. Set-up, before headlab is imported: where
``transformer_lens`` is missing, the carried wheels whose distributions are not installed go into a fresh
folder (``pip install --no-index --no-deps --target``), put first on ``sys.path``, so the image's own packages
stay as they are; headlab is imported from this working tree (the repo root first on ``sys.path``: nothing to
build). Should the carried datasets not import against the image's pyarrow or pandas, stand-in modules take
its place (transformer_lens only loads data sets with it, which headlab never asks for), and the header says
so. That set-up is ``benchmarks/gpu/setup.py``; the model shapes are ``benchmarks/gpu/shapes.py``. Tables are
printed, and written with a JSON of every figure (and each error's traceback) to ``$OUT/gpu_check.md`` and
``$OUT/gpu_check.json`` (``out/`` without ``$OUT``) after every part, so a run cut short keeps what it measured.
``--parts a`` / ``bc`` runs some parts, ``--exact-task`` picks part (b)'s task.

Dry run on a CPU, the same code path with tiny shapes (under a minute; ``tests/integration/test_gpu_check.py``)::

    python benchmarks/gpu_check.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from gpu.setup import CARRY, ROOT, first_line, setup
from gpu.shapes import SHAPES, TINY_SHAPES

T0 = time.perf_counter()
FLOP_LIMIT = 790e12  # bf16 dense matrix products on the H200, measured (about 990e12 by the datasheet)
GOAL_ATTRIBUTION_S = 60.0
GOAL_EXACT_SHARE = 0.30

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

# Part (a): two tasks whose counterfactuals keep their prompt's byte length (resample needs that).
TOY = {
    "Box": [
        {
            "prompt": f"The box of {a} is",
            "answer": f" {a}{b}",
            "counterfactual": f"The box of {b} is",
            "counterfactual_answer": f" {b}{a}",
        }
        for a, b in ["xy", "pq", "mn", "rs", "uv", "gh"]
    ],
    "Sum": [
        {
            "prompt": f"Add {a} and {b}: the sum is",
            "answer": f" {a + b}",
            "counterfactual": f"Add {a} and {b + 1}: the sum is",
            "counterfactual_answer": f" {a + b + 1}",
        }
        for a, b in [(1, 2), (3, 4), (2, 5), (4, 1), (6, 2)]
    ],
}


# --- measuring ----------------------------------------------------------------------------------------------


def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(fn, device):
    """``fn()``, its seconds (synchronized) and the device's peak allocated bytes meanwhile (None on a CPU)."""
    import torch

    cuda = torch.device(device).type == "cuda"
    sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = fn()
    sync(device)
    seconds = time.perf_counter() - t
    return out, seconds, (torch.cuda.max_memory_allocated() if cuda else None)


def free(device) -> None:
    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def allocated(device):
    import torch

    return torch.cuda.memory_allocated() if torch.device(device).type == "cuda" else None


def progress(message: str) -> None:
    print(f"  [{time.perf_counter() - T0:6.1f} s] {message}", flush=True)


def count(n) -> str:
    return "n/a" if n is None else f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.3f}M"


def gib(n) -> str:
    return "n/a" if n is None else f"{n / 2**30:.2f}"


def table(headers, rows) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def attempt(errors: dict, label: str, fn):
    """Run ``fn()``; on an exception record it under ``label``, print its first line, and return None."""
    try:
        return fn()
    except Exception as err:  # each measurement reports on its own
        errors[label] = {"error": first_line(err), "traceback": traceback.format_exc()}
        print(f"  {label} failed: {first_line(err)}", flush=True)
        return None


# --- models and tasks ---------------------------------------------------------------------------------------


def smollm2_tokenizer():
    """The embedded model's tokenizer: ``carry/tokenizer`` (the device machine), else headlab's model cache."""
    from headlab.models import cache_dir

    for folder in (CARRY / "tokenizer", cache_dir() / "models" / "smollm2-135m-instruct-q4_1-f32"):
        if (folder / "tokenizer.json").is_file():
            try:
                from transformers import AutoTokenizer

                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            except Exception:  # another transformers version may not know the saved class: read the file itself
                from transformers import PreTrainedTokenizerFast

                config = json.loads((folder / "tokenizer_config.json").read_text())
                special = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if config.get(k)}
                return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **special)
    raise FileNotFoundError("no SmolLM2 tokenizer: run `make gpu-carry` (fills carry/tokenizer) and carry it")


def build(config: dict, device, dtype):
    """A random ``LlamaForCausalLM`` of ``config`` made directly on ``device`` in ``dtype``; (model, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(**config)
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)

    def make():
        with torch.device(device):
            return AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()

    model, seconds, _ = measure(make, device)
    return model, seconds


def block_params(model) -> int:
    """Parameters of one decoder block (they are all alike)."""
    return sum(p.numel() for p in model.model.layers[0].parameters())


def pick(task, n: int, tokenizer):
    """The first ``n`` items of ``task`` whose counterfactual has its prompt's token length (resample keeps
    only those: with the SmolLM2 tokenizer every built-in item; with the byte tokenizer, fewer)."""
    from headlab.tasks import Task

    def length(text):
        return len(tokenizer(text).input_ids)

    items = [it for it in task.items if it.counterfactual and length(it.prompt) == length(it.counterfactual)]
    return Task(task.name, tuple(items[:n]), task.source)


def token_count(tasks, tokenizer) -> int:
    """Real tokens (prompt + teacher-forced answer) of the items a resample scorer keeps."""
    from headlab.metrics import encode

    total = 0
    for task in tasks:
        enc = encode(task, tokenizer, "logit_diff")
        total += int(enc.lengths[enc.cf_ok].sum())
    return total


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x.ravel(), y.ravel()).statistic)


# --- part (a): CPU vs device --------------------------------------------------------------------------------


def part_a(device, report):
    import numpy as np
    import torch
    from common import test_models

    import headlab
    from headlab.tasks import Task

    tiny_hf, byte_tokenizer = test_models()
    shape = {"n_layers": 3, "n_heads": 4, "d_model": 32}
    tasks = [Task.from_records(name, records) for name, records in TOY.items()]
    cpu = headlab.load_model(tiny_hf(**shape), tokenizer=byte_tokenizer(), device="cpu")
    # same seed, same weights; load_model never moves a model it is given, so each is moved here
    dev = headlab.load_model(tiny_hf(**shape).to(device), tokenizer=byte_tokenizer())
    bf16 = headlab.load_model(tiny_hf(**shape).to(device, torch.bfloat16), tokenizer=byte_tokenizer())
    cases, errors, rows = [], {}, []
    for method in ("attribution", "ablation"):
        for ablation in ("zero", "mean", "resample"):
            label = f"{method}/{ablation}"
            progress(f"(a) {label}")

            def run(model):
                return headlab.score(model, tasks, method=method, ablation=ablation, cache=False, progress=False)

            ref = attempt(errors, f"{label} cpu", lambda: run(cpu))
            got = attempt(errors, f"{label} {device} float32", lambda: run(dev))
            low = attempt(errors, f"{label} {device} bfloat16", lambda: run(bf16))
            case = {"case": label, "max_abs_diff": None, "scale": None, "ok": False, "spearman_bf16": None}
            if ref is not None:
                case["scale"] = float(np.abs(ref.values).max())
            if ref is not None and got is not None:
                case["max_abs_diff"] = float(np.abs(ref.values - got.values).max())
                case["ok"] = case["max_abs_diff"] <= 1e-4 * max(1.0, case["scale"])
            if ref is not None and low is not None:
                case["spearman_bf16"] = spearman(ref.values, low.values)
            cases.append(case)
            rows.append(
                [
                    label,
                    "error" if case["max_abs_diff"] is None else f"{case['max_abs_diff']:.2e}",
                    "error" if case["scale"] is None else f"{case['scale']:.3g}",
                    "pass" if case["ok"] else "FAIL",
                    "error" if case["spearman_bf16"] is None else f"{case['spearman_bf16']:.4f}",
                ]
            )
    title = (
        f"## (a) CPU float32 vs {device}: every scorer on tiny_hf(3 layers, 4 heads, d_model 32), "
        f"{len(tasks)} tasks ({' + '.join(str(len(t)) for t in tasks)} items)"
    )
    md = "\n".join(
        [
            title,
            "",
            table(
                [
                    "method/ablation",
                    f"max abs diff cpu vs {device} (float32)",
                    "scale (max abs score)",
                    "≤ 1e-4·max(1, scale)",
                    f"Spearman ρ, {device} bfloat16 vs cpu float32",
                ],
                rows,
            ),
        ]
    )
    report(md)
    failed = bool(errors) or not all(c["ok"] for c in cases)
    return {"cases": cases, "errors": errors}, failed


# --- parts (b) and (c): big shapes --------------------------------------------------------------------------


def attribution_run(model, tasks, device, tokenizer, n_params, repeat: bool):
    """Attribution (resample) over ``tasks``: the first call, and a second one when the first was quick."""
    import numpy as np

    import headlab

    def run():
        return headlab.score(model, tasks, method="attribution", ablation="resample", cache=False, progress=False)

    scores, seconds, peak = measure(run, device)
    tokens = token_count(tasks, tokenizer)
    out = {
        "tasks": len(tasks),
        "items": int(sum(scores.n_examples)),
        "tokens": tokens,
        "seconds": seconds,
        "peak_bytes": peak,
        "flops": 2 * n_params * 2 * tokens,  # clean + counterfactual forward; the backward not counted
        "finite": bool(np.isfinite(scores.values).all()),
    }
    out["flop_share"] = out["flops"] / seconds / FLOP_LIMIT
    out["seconds_repeat"] = measure(run, device)[1] if repeat and seconds < 20 else None
    return out


def exact_run(model, task, device, tokenizer, blocks: int, per_block: int):
    """Exact resample ablation over one task; FLOPs as the sweep counts them (see the module docstring)."""
    import numpy as np

    import headlab

    def run():
        return headlab.score(model, task, method="ablation", ablation="resample", cache=False, progress=False)

    scores, seconds, peak = measure(run, device)
    tokens = token_count([task], tokenizer)
    heads = model.cfg.n_heads
    sweep = sum(heads * 2 * (blocks - layer) * per_block * tokens for layer in range(blocks))
    passes = 2 * (2 * blocks * per_block * tokens)  # the clean and the counterfactual pass
    out = {
        "items": int(scores.n_examples[0]),
        "tokens": tokens,
        "head_reruns": blocks * heads,
        "seconds": seconds,
        "peak_bytes": peak,
        "flops": sweep + passes,
        "finite": bool(np.isfinite(scores.values).all()),
    }
    out["flop_share"] = out["flops"] / seconds / FLOP_LIMIT
    return out


def big_model(name, device, dtype, tiny: bool, tokenizer, errors, attribution_tasks, exact_task=None):
    """Build ``name``'s shape on ``device``, wrap it, run attribution (and exact ablation); free it after."""
    import headlab

    config = dict(SHAPES[name])
    if tiny:
        config.update(
            {"vocab_size": len(tokenizer), "intermediate_size": 2 * TINY_SHAPES[name]["hidden_size"]},
            **TINY_SHAPES[name],
        )
        config.update({"max_position_embeddings": 512, "head_dim": None, "rope_scaling": None})
        config.update({"bos_token_id": None, "eos_token_id": None})
        config = {k: v for k, v in config.items() if v is not None}
    fig = {"model": name, "config": config}
    model = bridge = None
    try:
        progress(f"{name}: building on {device} in {str(dtype).removeprefix('torch.')}")
        model, fig["build_seconds"] = build(config, device, dtype)
        fig["params"] = sum(p.numel() for p in model.parameters())
        fig["block_params"] = block_params(model)
        fig["weight_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
        t = time.perf_counter()
        bridge = headlab.load_model(model, tokenizer=tokenizer)  # stays where and as it is
        fig["wrap_seconds"] = time.perf_counter() - t
        fig["dtype"] = str(next(bridge.parameters()).dtype).removeprefix("torch.")
        blocks = config["num_hidden_layers"]
        n_params = blocks * fig["block_params"]
        progress(f"{name}: {count(fig['params'])} parameters, built in {fig['build_seconds']:.1f} s; attribution")
        fig["attribution"] = attempt(
            errors,
            f"{name} attribution",
            lambda: attribution_run(bridge, attribution_tasks, device, tokenizer, n_params, repeat=not tiny),
        )
        if exact_task is not None:
            progress(f"{name}: exact ablation")
            fig["exact"] = attempt(
                errors,
                f"{name} exact ablation",
                lambda: exact_run(bridge, exact_task, device, tokenizer, blocks, fig["block_params"]),
            )
    finally:
        model = bridge = None  # drop the last references before freeing
        free(device)
        fig["allocated_after_free"] = allocated(device)
    return fig


def row_attribution(fig) -> list:
    a = fig.get("attribution")
    if not a:
        return [fig["model"], count(fig.get("params")), "error", "", "", "", "", ""]
    repeat = "" if a["seconds_repeat"] is None else f"{a['seconds_repeat']:.2f}"
    return [
        fig["model"],
        count(fig["params"]),
        f"{a['tasks']} × {a['items']} items, {a['tokens']} tokens",
        f"{a['seconds']:.2f}",
        repeat,
        gib(a["peak_bytes"]),
        f"{a['flop_share']:.2%}",
        f"{fig['build_seconds']:.1f} + {fig['wrap_seconds']:.1f}",
    ]


ATTRIBUTION_HEADERS = [
    "shape (random weights)",
    "params",
    "attribution resample over",
    "s (first call)",
    "s (second call)",
    "peak GiB (weights incl.)",
    "share of 790 TFLOP/s",
    "build + wrap s",
]


def part_b(device, dtype, tiny, tokenizer, tasks, exact_task, report):
    errors = {}
    fig = big_model("Llama-3.1-8B", device, dtype, tiny, tokenizer, errors, tasks, exact_task)
    rows = [row_attribution(fig)]
    a, e = fig.get("attribution"), fig.get("exact")
    lines = [
        f"## (b) Llama-3.1-8B's shape, random weights, {fig['dtype']} on {device}"
        + (" (--tiny: tiny shape)" if tiny else ""),
        "",
        table(ATTRIBUTION_HEADERS, rows),
        "",
    ]
    if e:
        lines += [
            table(
                [
                    "exact resample ablation",
                    "items",
                    "tokens",
                    "s",
                    "peak GiB (weights incl.)",
                    "est. TFLOP",
                    "share of 790 TFLOP/s",
                ],
                [
                    [
                        f"{exact_task.name}, {e['head_reruns']} heads",
                        e["items"],
                        e["tokens"],
                        f"{e['seconds']:.2f}",
                        gib(e["peak_bytes"]),
                        f"{e['flops'] / 1e12:.2f}",
                        f"{e['flop_share']:.2%}",
                    ]
                ],
            ),
            "",
            "FLOPs: 2 · n_params · tokens per forward, summed over forwards; n_params = decoder blocks' parameters. "
            "Attribution: clean + counterfactual forward (backward not counted). Exact: estimated as the sweep "
            "re-runs, Σ over heads of 2 · params(blocks ≥ l) · tokens, plus the clean and counterfactual passes.",
            "",
        ]
    goals = []
    if a:
        met = a["seconds"] <= GOAL_ATTRIBUTION_S
        goals.append(
            f"attribution, 8 tasks ≤ {GOAL_ATTRIBUTION_S:.0f} s: {a['seconds']:.2f} s — {'met' if met else 'NOT met'}"
        )
    if e:
        met = e["flop_share"] >= GOAL_EXACT_SHARE
        goals.append(
            f"exact ablation ≥ {GOAL_EXACT_SHARE:.0%} of the FLOP limit: {e['flop_share']:.2%} — "
            + ("met" if met else "NOT met")
        )
    lines += [f"Goal ({'H200 goals; a tiny run only checks the code path' if tiny else 'H200'}): {g}" for g in goals]
    report("\n".join(lines))
    return {**fig, "errors": errors}, bool(errors)


def part_c(device, dtype, tiny, tokenizer, tasks, report):
    errors, figs = {}, []
    for name in ("Yi-1.5-9B", "Llama-3.2-3B"):
        fig = attempt(errors, f"{name} build", lambda: big_model(name, device, dtype, tiny, tokenizer, errors, tasks))
        if fig is not None:
            figs.append(fig)
    rows = [row_attribution(f) for f in figs]
    report(
        "\n".join(
            [
                f"## (c) attribution resample at other shapes, random weights, on {device}"
                + (" (--tiny: tiny shapes)" if tiny else ""),
                "",
                table(ATTRIBUTION_HEADERS, rows),
            ]
        )
    )
    return {"models": figs, "errors": errors}, bool(errors)


# --- main ---------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="device of the second copy and of the big models")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and few items: the code path on a CPU")
    ap.add_argument("--exact-task", default="Knowledge Recall", help="the task of part (b)'s exact ablation")
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"], help="big shapes' dtype")
    ap.add_argument("--parts", default="abc", help="which parts to run, e.g. 'a' or 'bc'")
    args = ap.parse_args()
    out_dir = Path(os.environ.get("OUT") or ROOT / "out")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        env = {"setup": setup()}
        import torch
        import transformers

        import headlab.scoring  # noqa: F401  (transformer_lens and headlab import here, or the set-up failed)

        if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"--device {args.device} but no CUDA device is visible: use --device cpu")
    except Exception as err:
        message = f"set-up failed: {first_line(err)}"
        print(message, flush=True)
        write(
            out_dir,
            [f"# headlab GPU check\n\n{message}"],
            {"setup_error": message, "traceback": traceback.format_exc()},
        )
        return 1

    device = args.device
    cuda = torch.device(device).type == "cuda"
    if args.tiny:
        torch.set_num_threads(1)  # tiny matrices gain nothing from threads; on a busy CPU they lose (measured)
    env.update(
        {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "transformer_lens": importlib.metadata.version("transformer-lens"),
            "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
            "torch_threads": torch.get_num_threads(),
            "mode": "tiny" if args.tiny else "full",
            "import_seconds": time.perf_counter() - T0,
        }
    )
    sections, results, failed = [], {"env": env}, []

    def report(md: str) -> None:
        print(md + "\n", flush=True)
        sections.append(md)

    report(
        f"# headlab GPU check ({env['mode']}) on {env['device']}\n\n"
        f"python {env['python']}, torch {env['torch']}, transformers {env['transformers']}, transformer-lens "
        f"{env['transformer_lens']}; set-up {env['setup']['seconds']:.1f} s "
        f"({len(env['setup']['installed'])} wheels installed), imports done at {env['import_seconds']:.1f} s"
        + (f"; datasets stand-in ({env['setup']['datasets_stand_in']})" if "datasets_stand_in" in env["setup"] else "")
    )
    # bfloat16 for the big shapes; float32 for a CPU dry run (bf16 matrix products are slow on this CPU)
    dtype = getattr(torch, args.dtype) if args.dtype != "auto" else torch.bfloat16 if cuda else torch.float32
    n_items, n_exact = (4, 2) if args.tiny else (48, 8)
    parts = {}
    if "a" in args.parts:
        parts["a"] = lambda: part_a(device, report)

    @functools.cache
    def workload():
        """The tokenizer, the 8 tasks for attribution and the task for exact ablation (parts b and c)."""
        from common import test_models

        from headlab.tasks import builtin

        tokenizer = test_models()[1]() if args.tiny else smollm2_tokenizer()
        everything = builtin()
        tasks = [pick(t, n_items, tokenizer) for t in everything.values()]
        return tokenizer, tasks, pick(everything[args.exact_task], n_exact, tokenizer)

    if "b" in args.parts:
        parts["b"] = lambda: part_b(device, dtype, args.tiny, *workload(), report)
    if "c" in args.parts:
        parts["c"] = lambda: part_c(device, dtype, args.tiny, *workload()[:2], report)
    for key, run in parts.items():
        t = time.perf_counter()
        try:
            results[key], bad = run()
        except Exception as err:
            results[key] = {"error": first_line(err), "traceback": traceback.format_exc()}
            report(f"## ({key}) failed\n\n{first_line(err)}")
            bad = True
        results[key]["part_seconds"] = time.perf_counter() - t
        if bad:
            failed.append(key)
        free(device)
        write(out_dir, sections, results)  # after every part: a run cut short still leaves what it measured

    wall = time.perf_counter() - T0
    results.update({"wall_seconds": wall, "failed_parts": failed})
    report(
        f"Total wall time {wall:.1f} s; " + (f"FAILED parts: {', '.join(failed)}" if failed else "every part passed")
    )
    write(out_dir, sections, results)
    print(f"wrote {out_dir / 'gpu_check.md'} and {out_dir / 'gpu_check.json'}")
    return 1 if failed else 0


def write(out_dir: Path, sections: list, results: dict) -> None:
    (out_dir / "gpu_check.md").write_text("\n\n".join(sections) + "\n")
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
