"""Never a silent wrong map: a catalogue of bad inputs across the API, the loaders, the CLI and the explorer.

Each case is one call and one assertion: either the exception it raises (its type and a regex of its
message, which must name the argument, the value or what to do), or — for inputs that are legitimate but
easy to get wrong — the safe outcome (a warning and the right result). The last test counts the catalogue
and checks that the error messages are one line each.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from headlab import cli
from headlab.analysis import compare, stats
from headlab.analysis.interventions import head_means, mask_heads, steer
from headlab.analysis.selection import elbow_count, select_heads
from headlab.analysis.steering import steering_sweep
from headlab.analysis.validation import faithfulness, layer_matched_random, validate
from headlab.metrics import encode, evaluate
from headlab.models import ModelInfo, ModelLoadError, describe, load_model
from headlab.results import HeadScores
from headlab.scoring import score
from headlab.tasks import Item, Task, TaskError, as_task_list, builtin, load_cogqa
from headlab.testing import byte_tokenizer, head_scores, planted, tiny, tiny_hf
from headlab.viz import explorer as widgets
from headlab.viz import plot
from headlab.viz.curves import faithfulness_plot as plot_curves

L, H = 3, 4  # conftest's tiny_model
GOOD = {"prompt": "2 + 2 =", "answer": " 4", "counterfactual": "2 + 3 =", "counterfactual_answer": " 5"}
PLAIN = {"prompt": "1 + 1 =", "answer": " 2"}


# --- the catalogue's machinery -------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    entry: str  # where the bad input enters: "api:<module>", "loader", "cli" or "explorer"
    run: Callable[[Any], Any]
    error: type | None  # the exception expected; None: a safe outcome
    match: str | None  # regex of the message (error) or of one warning (safe outcome; None: no warning needed)
    check: Callable[[Any, Any], bool] | None = None  # safe outcome: check(result, ctx) holds


CASES: list[Case] = []
MESSAGES: dict[str, str] = {}


def unique(id: str) -> str:
    taken = {c.id for c in CASES}
    out, n = id, 1
    while out in taken:
        n += 1
        out = f"{id} #{n}"
    return out


def bad(entry: str, id: str, run, error: type, match: str) -> None:
    CASES.append(Case(unique(f"{entry}:{id}"), entry, run, error, match))


def safe(entry: str, id: str, run, check, warns: str | None = None) -> None:
    CASES.append(Case(unique(f"{entry}:{id}"), entry, run, None, warns, check))


def message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


class CLIError(Exception):
    """What the command line printed last on stderr when it exited with an error."""


def run_cli(*argv: str) -> int:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(list(argv))
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                raise CLIError(exit_.code) from None
            rc = exit_.code
    if rc:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        raise CLIError(lines[-1] if lines else f"exit status {rc}")
    return rc


class WidgetError(Exception):
    """The one line the explorer shows in place of a traceback."""


def shown_error(ex) -> None:
    """Raise the explorer's error line, if it shows one."""
    text = html.unescape(re.sub(r"<[^>]+>", "", ex.state.message)).removeprefix("⚠ ").strip()
    if text:
        raise WidgetError(text)


def hand_scores(values, tasks=None, n_items=None, params=None, name="tiny-3x4-d64-s0") -> HeadScores:
    v = np.asarray(values, dtype=np.float64)
    T, l, h = v.shape
    n = n_items or 1
    per = np.repeat(v[:, None], n, 1).astype(np.float32) if n_items else v[:, None].astype(np.float32)
    if n_items:
        per = per + np.random.default_rng(0).normal(0, 0.01, per.shape).astype(np.float32)
    return head_scores(
        v,
        per_example=per,
        tasks=tasks,
        model=ModelInfo(name, l, h, h, 8, 32, 259),
        params={"ablation": "resample", "metric": "logit_diff", **(params or {})},
    )


def write(ctx, name: str, data: bytes | str) -> str:
    path = ctx.tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def cogqa(ctx, name: str, rows) -> str:
    return write(ctx, name, json.dumps(rows))


def q(*subs, question="Who wrote it?"):
    return {"question": question, "answer": "x", "generated": list(subs)}


def sub(label="Retrieval", subquestion="Which book?", answer="Dune"):
    return {"subquestion": subquestion, "answer": answer, "cognitive_skill": label}


@pytest.fixture(scope="session")
def ctx(tiny_model, tiny_llama, toy_task, tmp_path_factory):
    c = SimpleNamespace(model=tiny_model, hf=tiny_llama, task=toy_task, tmp=tmp_path_factory.mktemp("bad_inputs"))
    rng = np.random.default_rng(0)
    c.s = hand_scores(rng.normal(size=(2, L, H)), ["A", "B"], n_items=4)
    c.other = hand_scores(rng.normal(size=(2, L, H)), ["A", "B"])
    c.wide = hand_scores(rng.normal(size=(2, 2, 5)), ["A", "B"])  # another model's shape
    c.toy_scores = score(tiny_model, toy_task, method="attribution", cache=False, progress=False)
    c.long = Task.from_records("Long", [{"prompt": "x" * 300, "answer": " y"}, PLAIN])  # > n_ctx 256
    c.long_cf = Task.from_records(
        "LongCF", [{"prompt": "x" * 300, "answer": " y", "counterfactual": "z" * 300, "counterfactual_answer": " w"}]
    )
    c.partial = Task.from_records("Partial", [GOOD, PLAIN])
    c.plain = Task.from_records("Plain", [PLAIN, {"prompt": "3 + 3 =", "answer": " 6"}])
    same = [{**r, "counterfactual": r["prompt"]} for r in toy_task_records(toy_task)]
    c.same = Task.from_records("Same", same)  # every counterfactual identical to its prompt
    c.some_same = Task.from_records("SomeSame", same[:2] + toy_task_records(toy_task)[2:])
    # a user's own task named like a built-in one, and its scores
    c.mine = Task.from_records("Retrieval", toy_task_records(toy_task))
    c.mine_scores = score(tiny_model, c.mine, method="attribution", cache=False, progress=False)
    c.alpha = Task.from_records("A", [GOOD, PLAIN | {"counterfactual": "1 + 2 =", "counterfactual_answer": " 3"}])
    c.beta = Task.from_records("B", [{**GOOD, "prompt": "5 + 5 ="}, {**GOOD, "prompt": "6 + 6 ="}])
    return c


def toy_task_records(task: Task) -> list[dict]:
    return [
        {
            "prompt": i.prompt,
            "answer": i.answer,
            "counterfactual": i.counterfactual,
            "counterfactual_answer": i.counterfactual_answer,
        }
        for i in task.items
    ]


def explorer(c, scores=None, tasks=None, models=None, **kw):
    return widgets.explorer(models=models or {"tiny": c.model}, tasks=tasks, scores=scores, **kw)


# --- models -------------------------------------------------------------------------------------------------

bad("api:models", "unknown alias", lambda c: load_model("gpt-17"), ModelLoadError, "unknown model alias 'gpt-17'")
bad("api:models", "int model", lambda c: load_model(42), ModelLoadError, "not int")
bad("api:models", "tiny by name", lambda c: load_model("tiny"), ModelLoadError, r"headlab\.testing\.tiny\(\)")
bad("api:models", "missing folder", lambda c: load_model("./no/such/folder"), ModelLoadError, "no model folder at")
bad("api:models", "hf without tokenizer", lambda c: load_model(tiny_hf()), ModelLoadError, "needs its tokenizer")
bad(
    "api:models",
    "tokenizer name not local",
    lambda c: load_model(tiny_hf(), tokenizer="nobody-xyz/no-tokenizer"),
    ModelLoadError,
    r"tokenizer='nobody-xyz/no-tokenizer' is not a local tokenizer",
)
bad(
    "api:models",
    "tokenizer an int",
    lambda c: load_model(tiny_hf(), tokenizer=42),
    ModelLoadError,
    "tokenizer= takes a Hugging Face tokenizer .* not int",
)
bad(
    "api:models",
    "tokenizer larger than vocab",
    lambda c: load_model(tiny_hf(vocab_size=100), tokenizer=byte_tokenizer()),
    ModelLoadError,
    "tokenizer has 259 tokens but the model's vocabulary has 100",
)
bad(
    "api:models",
    "tokenizer with a bridge",
    lambda c: load_model(c.model, tokenizer=byte_tokenizer()),
    ModelLoadError,
    "only with a Hugging Face model",
)
for kwargs, match in [
    ({"device": "banana"}, "device='banana' is not a device"),
    ({"device": "cuda:7"}, "no CUDA device is visible|only"),
    ({"device": 3.5}, "is not a device"),
    ({"dtype": "int8"}, "dtype='int8': converting weights to int8 would destroy them"),
    ({"dtype": torch.int8}, "dtype=torch.int8: converting weights to int8 would destroy them"),
    ({"device_map": "auto", "device": "cpu"}, "exclude each other"),
    ({"n_devices": 0}, "n_devices must be a positive int"),
    ({"n_devices": True}, "n_devices must be a positive int"),
    ({"device_map": 5}, "device_map must be 'auto' or a dict"),
    ({"device_map": "auto"}, "apply when loading by name or folder"),
]:
    bad(
        "api:models",
        f"placement {kwargs}",
        lambda c, kw=kwargs: load_model(tiny_hf(), tokenizer=byte_tokenizer(), **kw),
        ModelLoadError,
        match,
    )
# the embedded model's first load dequantizes for minutes: its placement is refused before anything loads
bad("api:models", "embedded bad device", lambda c: load_model(device="banana"), ModelLoadError, "is not a device")
bad("api:models", "embedded bad dtype", lambda c: load_model(dtype="int4"), ModelLoadError, "dtype='int4'")
safe(
    "api:models",
    "small tokenizer on a large vocab warns",
    lambda c: load_model(tiny_hf(vocab_size=50_000), tokenizer=byte_tokenizer()),
    lambda m, c: describe(m).d_vocab == 50_000,
    warns=r"tokenizer has 259 tokens but the model's vocabulary has 50000: it reaches only 0\.5%",
)
safe(
    "api:models",
    "matching tokenizer does not warn",
    lambda c: load_model(tiny_hf(), tokenizer=byte_tokenizer()),
    lambda m, c: describe(m).d_vocab == 259,
)
for kwargs, match in [
    ({"n_layers": 0}, "n_layers must be a positive int, got 0"),
    ({"n_layers": True}, "n_layers must be a positive int, got True"),
    ({"n_heads": 2.0}, "n_heads must be a positive int"),
    ({"n_heads": 3}, r"d_model \(64\) must be divisible by n_heads \(3\)"),
    ({"n_kv_heads": 3}, r"n_heads \(4\) must be a multiple of n_kv_heads \(3\)"),
    ({"n_kv_heads": 0}, "n_kv_heads must be a positive int"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"seed": "a"}, "seed must be a non-negative int"),
    ({"n_ctx": 0}, "n_ctx must be a positive int"),
]:
    bad("api:models", f"tiny {kwargs}", lambda c, kw=kwargs: tiny(**kw), ValueError, match)
for kwargs, match in [
    ({"d_model": 30}, r"d_model \(30\) must be divisible by n_heads \(4\)"),
    ({"n_kv_heads": 3}, "must be a multiple of n_kv_heads"),
    ({"vocab_size": 0}, "vocab_size must be a positive int"),
    ({"n_layers": -2}, "n_layers must be a positive int"),
]:
    bad("api:models", f"tiny_hf {kwargs}", lambda c, kw=kwargs: tiny_hf(**kw), ValueError, match)
for heads, match in [
    ([(0.5, 1)], r"heads\[0\] = \(0\.5, 1\): layer and head must be ints"),
    ([(0,)], r"heads\[0\] = \(0,\) is not a \(layer, head\) pair"),
    ((0, 1), r"heads=\(0, 1\) is one pair: pass a list of pairs"),
    ([(5, 0)], "outside a 2 × 4 model"),
    (5, "heads must be a list of"),
]:
    bad("api:models", f"planted {heads!r}", lambda c, hs=heads: planted(hs), ValueError, match)
bad("api:models", "describe a string", lambda c: describe("gpt2"), TypeError, "describe.. takes a model .* not str")

# --- tasks ------------------------------------------------------------------------------------------------

for records, match in [
    (None, "records must be a list of dicts .* not NoneType"),
    (42, "records must be a list of dicts .* not int"),
    ("prompt", "records must be a list of dicts .* not str"),
    (GOOD, r"records is one dict: pass a list of them"),
    ([], "has no items"),
    ([{"answer": " 4"}], "item 0 is missing a non-empty 'prompt' string"),
    ([{"prompt": "2 + 2 =", "answer": ""}], "item 0 is missing a non-empty 'answer' string"),
    ([{"prompt": "   ", "answer": " 4"}], "missing a non-empty 'prompt'"),
    ([{"prompt": 5, "answer": " 4"}], r"item 0 'prompt' is a int \(5\), not a string"),
    ([{"prompt": "x", "answer": 4}], r"item 0 'answer' is a int \(4\), not a string"),
    ([GOOD, GOOD], "item 1 duplicates item 0"),
    ([{"prompt": "a", "answer": " b", "counterfactual": "c"}], "only one of"),
    ([{**GOOD, "counterfactual_answer": " 4"}], "equal to answer"),
    ([{**GOOD, "colour": "red"}], r"unknown field\(s\) \['colour'\]"),
    ([{**PLAIN, "counterfactal": "1 + 2 =", "counterfactual_answer": " 3"}], r"unknown field\(s\) \['counterfactal'\]"),
    (["2 + 2 = 4"], "item 0 is a str, not a dict"),
    ([{**GOOD, "counterfactual": 7}], "item 0 'counterfactual' is a int"),
    ([{**GOOD, "counterfactual": " "}], "empty counterfactual"),
]:
    bad("api:tasks", f"from_records {match[:40]}", lambda c, r=records: Task.from_records("t", r), TaskError, match)
bad("api:tasks", "from_records empty name", lambda c: Task.from_records("", [GOOD]), TaskError, "non-empty string name")
bad("api:tasks", "from_records None name", lambda c: Task.from_records(None, [GOOD]), TaskError, "got None")
bad("api:tasks", "Task with dicts", lambda c: Task("x", [GOOD]), TaskError, "items must be a tuple of Item")
bad("api:tasks", "Task source int", lambda c: Task("x", (Item("a", " b"),), 5), TaskError, "source must be a string")
for n in (0, -1, 1.5, True):
    bad(
        "api:tasks",
        f"subset({n!r})",
        lambda c, n=n: c.task.subset(n),
        TaskError,
        rf"subset\(n\) needs a positive int n, got {n!r}",
    )
safe("api:tasks", "subset beyond length", lambda c: c.task.subset(100), lambda t, c: len(t) == len(c.task))
bad(
    "api:tasks",
    "dataframe misspelled column",
    lambda c: Task.from_dataframe(
        pd.DataFrame([{**PLAIN, "counterfactual": "1 + 2 =", "counterfactual_anwser": " 3"}]), "t"
    ),
    TaskError,
    r"unknown column\(s\) \['counterfactual_anwser'\]",
)
bad(
    "api:tasks",
    "dataframe extra column",
    lambda c: Task.from_dataframe(pd.DataFrame([{**PLAIN, "notes": "?"}]), "t"),
    TaskError,
    r"unknown column\(s\) \['notes'\]",
)
bad(
    "api:tasks",
    "dataframe lacks answer",
    lambda c: Task.from_dataframe(pd.DataFrame([{"prompt": "x"}]), "t"),
    TaskError,
    r"lacks column\(s\) \['answer'\]",
)
bad(
    "api:tasks",
    "dataframe is a list",
    lambda c: Task.from_dataframe([PLAIN], "t"),
    TaskError,
    "takes a pandas DataFrame, not list",
)
bad(
    "api:tasks",
    "dataframe int prompts",
    lambda c: Task.from_dataframe(pd.DataFrame([{"prompt": 5, "answer": " 4"}]), "t"),
    TaskError,
    "'prompt' is a int",
)
bad(
    "api:tasks",
    "dataframe only cf prompt",
    lambda c: Task.from_dataframe(pd.DataFrame([{**PLAIN, "counterfactual": "1 + 2 ="}]), "t"),
    TaskError,
    "only one of",
)
safe("api:tasks", "builtin one name", lambda c: builtin("Retrieval"), lambda t, c: list(t) == ["Retrieval"])
bad(
    "api:tasks",
    "builtin unknown",
    lambda c: builtin(["Telepathy"]),
    TaskError,
    r"unknown built-in task\(s\) \['Telepathy'\]",
)
bad("api:tasks", "builtin wrong case", lambda c: builtin("retrieval"), TaskError, r"did you mean \['Retrieval'\]")
bad("api:tasks", "builtin int", lambda c: builtin(42), TaskError, "takes task names .* not int")
bad("api:tasks", "builtin empty", lambda c: builtin([]), TaskError, "got no names")
bad("api:tasks", "as_task_list int", lambda c: as_task_list(42), TaskError, "not int")
bad("api:tasks", "as_task_list string", lambda c: as_task_list("Retrieval"), TaskError, r"builtin\('Retrieval'\)")
bad("api:tasks", "as_task_list empty", lambda c: as_task_list([]), TaskError, "no tasks given")
bad("api:tasks", "as_task_list twice", lambda c: as_task_list([c.task, c.task]), TaskError, "must be unique")
bad("api:tasks", "as_task_list mixed", lambda c: as_task_list([c.task, "x"]), TaskError, "got str among them")
bad("api:tasks", "as_task_list dict of dicts", lambda c: as_task_list({"A": GOOD}), TaskError, "got dict among them")
bad(
    "api:tasks",
    "as_task_list wrong key",
    lambda c: as_task_list({"A": c.task}),
    TaskError,
    r"tasks\['A'\] is a task named 'Toy'",
)
safe("api:tasks", "as_task_list generator", lambda c: as_task_list(t for t in [c.task]), lambda t, c: t == [c.task])

# --- loaders: JSONL and CogQA -----------------------------------------------------------------------------------

jsonl = "\n".join(json.dumps(r) for r in [GOOD, PLAIN])
bad("loader", "jsonl missing", lambda c: Task.from_jsonl(c.tmp / "nope.jsonl"), TaskError, "no such task file")
bad("loader", "jsonl folder", lambda c: Task.from_jsonl(c.tmp), TaskError, "is a folder: name a .jsonl file")
bad("loader", "jsonl None", lambda c: Task.from_jsonl(None), TaskError, "path must be a file path, got None")
bad(
    "loader",
    "jsonl latin-1",
    lambda c: Task.from_jsonl(
        write(c, "latin.jsonl", json.dumps({"prompt": "café", "answer": " x"}, ensure_ascii=False).encode("latin-1"))
    ),
    TaskError,
    r"latin\.jsonl is not UTF-8 \(byte 0xe9",
)
bad(
    "loader",
    "jsonl bad line",
    lambda c: Task.from_jsonl(write(c, "bad.jsonl", jsonl + "\n{not json}\n")),
    TaskError,
    r"bad\.jsonl:3: not valid JSON",
)
bad(
    "loader",
    "jsonl list line",
    lambda c: Task.from_jsonl(write(c, "list.jsonl", "[1, 2]\n")),
    TaskError,
    r"list\.jsonl:1: a list, not an object",
)
bad("loader", "jsonl empty", lambda c: Task.from_jsonl(write(c, "empty.jsonl", "\n\n")), TaskError, "holds no records")
bad(
    "loader",
    "jsonl item error names the line",
    lambda c: Task.from_jsonl(write(c, "gap.jsonl", jsonl + "\n\n" + json.dumps({"prompt": "x"}) + "\n")),
    TaskError,
    r"gap\.jsonl:4: task 'Gap': item 2 is missing a non-empty 'answer'",
)
bad(
    "loader",
    "jsonl name int",
    lambda c: Task.from_jsonl(write(c, "ok.jsonl", jsonl), name=5),
    TaskError,
    "name must be a non-empty string, got 5",
)
safe(
    "loader",
    "jsonl good",
    lambda c: Task.from_jsonl(write(c, "my_task.jsonl", jsonl)),
    lambda t, c: t.name == "My Task",
)

bad("loader", "cogqa missing", lambda c: load_cogqa(c.tmp / "nope.json"), TaskError, "CogQA file not found")
bad("loader", "cogqa folder", lambda c: load_cogqa(c.tmp), TaskError, "is a folder: pass the path to cogqa_train.json")
bad("loader", "cogqa None", lambda c: load_cogqa(None), TaskError, "path must be a file path, got None")
bad(
    "loader",
    "cogqa object",
    lambda c: load_cogqa(cogqa(c, "obj.json", {})),
    TaskError,
    "expected a JSON list of questions, got a dict",
)
bad("loader", "cogqa invalid json", lambda c: load_cogqa(write(c, "broken.json", "[{")), TaskError, "is not valid JSON")
bad(
    "loader",
    "cogqa latin-1",
    lambda c: load_cogqa(write(c, "latin.json", '[{"question": "caf\xe9"}]'.encode("latin-1"))),
    TaskError,
    r"latin\.json is not UTF-8",
)
bad(
    "loader",
    "cogqa wrapped in a list",
    lambda c: load_cogqa(cogqa(c, "wrapped.json", [[q(sub())]])),
    TaskError,
    r"wrapped in a second list",
)
bad(
    "loader",
    "cogqa question a string",
    lambda c: load_cogqa(cogqa(c, "strq.json", [q(sub()), "Who?"])),
    TaskError,
    "question 1 is a str, not an object",
)
bad(
    "loader",
    "cogqa generated a dict",
    lambda c: load_cogqa(cogqa(c, "gendict.json", [{"question": "Q", "generated": sub()}])),
    TaskError,
    "question 0 'generated' is a dict, not a list",
)
bad(
    "loader",
    "cogqa subquestion a list",
    lambda c: load_cogqa(cogqa(c, "sublist.json", [q([sub()])])),
    TaskError,
    "question 0 subquestion 0 is a list, not an object",
)
bad(
    "loader",
    "cogqa no known label",
    lambda c: load_cogqa(cogqa(c, "nolabel.json", [q(sub("Telepathy"))]), report=False),
    TaskError,
    "no CogQA subquestion with one of the eight functions' labels",
)
bad(
    "loader",
    "cogqa context not bool",
    lambda c: load_cogqa(cogqa(c, "ok.json", [q(sub())]), context="yes"),
    TaskError,
    "context must be True or False",
)
safe(
    "loader",
    "cogqa question without generated is counted",
    lambda c: load_cogqa(cogqa(c, "nogen.json", [q(sub()), {"question": "Q2", "answer": "a"}])),
    lambda t, c: t.dropped["<question without generated subquestions>"] == 1 and len(t["Retrieval"]) == 1,
    warns=r"dropped 1 entries \(<question without generated subquestions>: 1\)",
)
safe(
    "loader",
    "cogqa null subquestion is counted, never 'None'",
    lambda c: load_cogqa(cogqa(c, "nullq.json", [q(sub(), sub(subquestion=None), sub(answer=None))])),
    lambda t, c: len(t["Retrieval"]) == 1 and not any("None" in i.prompt + i.answer for i in t["Retrieval"]),
    warns=r"<null subquestion or answer>: 2",
)
safe(
    "loader",
    "cogqa unknown labels are counted",
    lambda c: load_cogqa(cogqa(c, "labels.json", [q(sub(), sub("Induction"), sub(None))])),
    lambda t, c: t.dropped == {"Induction": 1, "<no label>": 1},
    warns=r"dropped 2 entries \(Induction: 1, <no label>: 1\)",
)
safe(
    "loader",
    "cogqa numeric answers are text",
    lambda c: load_cogqa(cogqa(c, "num.json", [q(sub("Math Calculation", "2 + 2?", 4))])),
    lambda t, c: t["Math Calculation"].items[0].answer == " 4",
)

# --- metrics ------------------------------------------------------------------------------------------------

bad(
    "api:metrics",
    "encode a dict",
    lambda c: encode({"Toy": c.task}, c.model.tokenizer),
    TypeError,
    "takes one Task, not dict",
)
bad("api:metrics", "encode no tokenizer", lambda c: encode(c.task, None), TypeError, "tokenizer must be a Hugging Face")
bad(
    "api:metrics",
    "encode metric",
    lambda c: encode(c.task, c.model.tokenizer, "accuracy"),
    ValueError,
    "unknown metric 'accuracy'",
)
bad(
    "api:metrics",
    "encode partial counterfactuals",
    lambda c: encode(c.partial, c.model.tokenizer, "logit_diff"),
    TaskError,
    r"'Partial': 1 of 2 items have a counterfactual answer",
)
bad(
    "api:metrics",
    "encode no counterfactuals",
    lambda c: encode(c.plain, c.model.tokenizer, "logit_diff"),
    TaskError,
    r"0 of 2 items have a counterfactual answer.*metric='logprob'",
)
bad(
    "api:metrics",
    "encode answer a token prefix",
    lambda c: encode(
        Task.from_records("P", [{**GOOD, "answer": " 4", "counterfactual_answer": " 44"}]), c.model.tokenizer
    ),
    TaskError,
    "is a token prefix of the counterfactual",
)
safe(
    "api:metrics",
    "encode identical counterfactual warns and is not resampled",
    lambda c: encode(c.some_same, c.model.tokenizer),
    lambda e, c: e.cf_ok.tolist() == [False, False] + [True] * (e.n - 2),
    warns=r"'SomeSame': 2 of 6 counterfactual prompts are identical to their prompt",
)
safe(
    "api:metrics",
    "encode counterfactual of another length warns",
    lambda c: encode(
        Task.from_records("Len", [GOOD, {**GOOD, "prompt": "2 + 2 = ", "answer": " 4x"}]), c.model.tokenizer
    ),
    lambda e, c: e.cf_ok.tolist() == [True, False],
    warns="1 of 2 counterfactual prompts differ in token length",
)
bad(
    "api:metrics",
    "evaluate builtin()",
    lambda c: evaluate(c.model, {"Toy": c.task}),
    TypeError,
    r"takes one Task, not dict: loop over builtin\(\)\.values\(\)",
)
bad(
    "api:metrics",
    "evaluate batch_size 0",
    lambda c: evaluate(c.model, c.task, batch_size=0),
    ValueError,
    "batch_size must be a positive int",
)
bad(
    "api:metrics",
    "evaluate too long",
    lambda c: evaluate(c.model, c.long),
    TaskError,
    r"task 'Long': item 0 is 302 tokens .* at most 256 positions \(cfg\.n_ctx\)",
)

# --- score ----------------------------------------------------------------------------------------------

kw = dict(cache=False, progress=False)
bad("api:score", "tasks an int", lambda c: score(c.model, 42, **kw), TaskError, "not int")
bad("api:score", "tasks a name", lambda c: score(c.model, "Retrieval", **kw), TaskError, r"builtin\('Retrieval'\)")
bad("api:score", "tasks a list of dicts", lambda c: score(c.model, [GOOD], **kw), TaskError, "got dict among them")
bad("api:score", "model an int", lambda c: score(42, c.task, **kw), ModelLoadError, "not int")
bad(
    "api:score",
    "unknown method",
    lambda c: score(c.model, c.task, method="magic", **kw),
    ValueError,
    "unknown method 'magic'",
)
bad("api:score", "method None", lambda c: score(c.model, c.task, method=None, **kw), ValueError, "unknown method None")
bad(
    "api:score",
    "unknown ablation",
    lambda c: score(c.model, c.task, ablation="random", **kw),
    ValueError,
    "unknown ablation 'random'",
)
bad(
    "api:score",
    "ablation a list",
    lambda c: score(c.model, c.task, ablation=["zero"], **kw),
    ValueError,
    "unknown ablation",
)
bad(
    "api:score",
    "unknown metric",
    lambda c: score(c.model, c.task, metric="acc", **kw),
    ValueError,
    "unknown metric 'acc'",
)
for b in (0, -1, 1.5, True, "8"):
    bad(
        "api:score",
        f"batch_size {b!r}",
        lambda c, b=b: score(c.model, c.task, batch_size=b, **kw),
        ValueError,
        "batch_size must be a positive int or None",
    )
bad(
    "api:score",
    "cache an int",
    lambda c: score(c.model, c.task, cache=5, progress=False),
    TypeError,
    "cache must be True, False",
)
bad(
    "api:score",
    "progress a string",
    lambda c: score(c.model, c.task, cache=False, progress="yes"),
    ValueError,
    "progress must be True or False",
)
bad(
    "api:score",
    "option for a method without options",
    lambda c: score(c.model, c.task, method="ablation", alpha=1, **kw),
    ValueError,
    r"method 'ablation' takes no options, got \['alpha'\]",
)
bad(
    "api:score",
    "unknown attribution option",
    lambda c: score(c.model, c.task, alpha=1, **kw),
    ValueError,
    r"unknown attribution option\(s\) \['alpha'\]: choose from \['path', 'steps'\]",
)
bad(
    "api:score",
    "unknown integrated-gradient path",
    lambda c: score(c.model, c.task, steps=2, path="inputs", **kw),
    ValueError,
    r"attribution option path='inputs': choose from \('activations', 'layers'\)",
)
bad(
    "api:score",
    "every counterfactual identical",
    lambda c: score(c.model, c.same, **kw),
    ValueError,
    r"'Same': no usable counterfactual \(6 of 6 identical to their prompt",
)
bad(
    "api:score",
    "prompt longer than the model's positions",
    lambda c: score(c.hf, c.long_cf, **kw),
    TaskError,
    r"'LongCF': item 0 is 302 tokens .* at most 256 positions",
)
bad(
    "api:score",
    "exact ablation too long",
    lambda c: score(c.model, c.long, method="ablation", ablation="zero", **kw),
    TaskError,
    "at most 256 positions",
)
bad(
    "api:score",
    "gating too long",
    lambda c: score(c.model, c.long, method="gating", steps=1, seeds=[0], **kw),
    TaskError,
    "at most 256 positions",
)
bad(
    "api:score",
    "probe too long",
    lambda c: score(c.model, [c.long, c.plain], method="probe", folds=2, **kw),
    ValueError,
    r"task 'Long': item 0 is 303 tokens",
)
safe(
    "api:score",
    "some identical counterfactuals are skipped by resample",
    lambda c: score(c.model, c.some_same, **kw),
    lambda s, c: s.n_examples.tolist() == [4],
    warns="2 of 6 counterfactual prompts are identical",
)
safe(
    "api:score",
    "partial counterfactuals: the fallback note counts them",
    lambda c: score(c.model, c.partial, **kw),
    lambda s, c: s.params["per_task"]["Partial"] == {"ablation": "mean", "metric": "logprob"},
    warns=r"Partial: only 1 of 2 items have a counterfactual, metric logit_diff → logprob",
)
safe(
    "api:score",
    "a generator of tasks",
    lambda c: score(c.model, (t for t in [c.task]), **kw),
    lambda s, c: s.tasks == ["Toy"],
)
safe(
    "api:score",
    "scores record the tasks' items",
    lambda c: c.toy_scores,
    lambda s, c: s.params["task_hashes"] == {"Toy": c.task.content_hash()},
)
for opts, match in [
    ({"folds": 1}, "folds must be ≥ 2"),
    ({"folds": 100}, r"folds=100 needs ≥ 100 items in every task, but 'A' has 2"),
    ({"folds": True}, "folds must be a positive int"),
    ({"lr": 0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"probe": "svm"}, "unknown probe 'svm'"),
    ({"pool": "max"}, "unknown pool 'max'"),
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"depth": 3}, r"unknown probe option\(s\) \['depth'\]"),
]:
    bad(
        "api:score",
        f"probe {opts}",
        lambda c, o=opts: score(c.model, [c.alpha, c.beta], method="probe", **o, **kw),
        ValueError,
        match,
    )
bad(
    "api:score",
    "probe one task",
    lambda c: score(c.model, c.task, method="probe", **kw),
    ValueError,
    "at least two tasks",
)
for opts, match in [
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"seeds": [1, 1]}, "distinct non-negative ints"),
    ({"steps": 0}, "steps must be a positive int"),
    ({"lr": -1}, "lr must be a positive number"),
    ({"lam": float("nan")}, "lam must be a positive number"),
    ({"noise": -1}, "noise must be a non-negative number"),
    ({"beta": 1}, r"unknown gating option\(s\) \['beta'\]"),
]:
    bad(
        "api:score",
        f"gating {opts}",
        lambda c, o=opts: score(c.model, c.task, method="gating", **o, **kw),
        ValueError,
        match,
    )

# --- HeadScores ------------------------------------------------------------------------------------------

bad(
    "api:results",
    "task index out of range",
    lambda c: c.s[99],
    IndexError,
    r"task index 99 is out of range: these scores hold 2",
)
bad("api:results", "unknown task", lambda c: c.s["Nope"], KeyError, r"no task 'Nope' in these scores")
bad("api:results", "bool task", lambda c: c.s[True], TypeError, "not True")
bad("api:results", "float task", lambda c: c.s[1.5], TypeError, "not float 1.5")
for k in (-1, 0, 2.5, "3", None):
    bad("api:results", f"top k={k!r}", lambda c, k=k: c.s.top("A", k=k), ValueError, "k must be")
bad("api:results", "top_table k=0", lambda c: c.s.top_table(k=0), ValueError, "k must be ≥ 1, got 0")
bad("api:results", "top_table decimals", lambda c: c.s.top_table(decimals=-1), ValueError, "decimals must be an int")
safe("api:results", "top k beyond the heads", lambda c: c.s.top("A", k=100), lambda t, c: len(t) == L * H)
bad(
    "api:results",
    "normalized unknown",
    lambda c: c.s.normalized("softmax"),
    ValueError,
    "unknown normalization 'softmax'",
)
bad("api:results", "select unknown", lambda c: c.s.select(["Nope"]), KeyError, "no task 'Nope'")
bad("api:results", "select none", lambda c: c.s.select([]), ValueError, "at least one task")
bad("api:results", "select twice", lambda c: c.s.select(["A", "A"]), ValueError, "got a task twice")
safe("api:results", "select one name", lambda c: c.s.select("B"), lambda s, c: s.tasks == ["B"])
info = ModelInfo("m", 2, 2, 2, 8, 32, 100)
for args, error, match in [
    ((np.zeros((1, 3, 2)), ["A"], info), ValueError, r"values has shape \(1, 3, 2\), expected \(1, 2, 2\)"),
    ((np.full((1, 2, 2), np.inf), ["A"], info), ValueError, "values hold ±inf .* task 'A' L0.H0"),
    ((np.zeros((2, 2, 2)), ["A", "A"], info), ValueError, "task names must be unique"),
    ((np.zeros((2, 2, 2)), "AB", info), TypeError, "not the string 'AB'"),
    ((np.zeros((1, 2, 2)), [3], info), TypeError, "task names must be non-empty strings"),
    ((np.zeros((1, 2, 2)), ["A"], {"n_layers": 2}), TypeError, "model must be a ModelInfo"),
    ((np.array([[["a", "b"], ["c", "d"]]]), ["A"], info), ValueError, "values must be numeric"),
]:
    bad(
        "api:results",
        f"HeadScores {match[:30]}",
        lambda c, a=args: HeadScores(*a, "m", {}, [1] * len(a[1]), [0.0] * len(a[1]), np.zeros((len(a[1]), 1, 2, 2))),
        error,
        match,
    )
bad(
    "api:results",
    "HeadScores n_examples",
    lambda c: HeadScores(np.zeros((1, 2, 2)), ["A"], info, "m", {}, [1, 1], [0.0], np.zeros((1, 1, 2, 2))),
    ValueError,
    r"n_examples has shape \(2,\), expected \(1,\)",
)
bad(
    "api:results",
    "HeadScores per_example",
    lambda c: HeadScores(np.zeros((1, 2, 2)), ["A"], info, "m", {}, [1], [0.0], np.zeros((1, 2, 2))),
    ValueError,
    r"per_example has shape \(1, 2, 2\), expected \(1, items, 2, 2\)",
)
bad("api:results", "save to an int", lambda c: c.s.save(42), ValueError, "save.. needs a file path, got 42")
bad(
    "api:results",
    "load missing",
    lambda c: HeadScores.load(c.tmp / "none.npz"),
    FileNotFoundError,
    "no saved scores at",
)
safe(
    "api:results",
    "NaN head: the task's other heads keep their fractions",
    lambda c: hand_scores([[[1.0, np.nan], [1.0, 2.0]]], ["A"]).normalized("fraction"),
    lambda f, c: np.isnan(f[0, 0, 1]) and np.allclose(f[0].ravel()[[0, 2, 3]], [0.25, 0.25, 0.5]),
)

# --- selection ---------------------------------------------------------------------------------------------

sel = lambda c, **kw: select_heads(c.s, "A", **kw)  # noqa: E731
for kw_, match in [
    ({"rule": "threshold", "threshold": "0.1"}, r"threshold must be a number, got '0\.1' \(str\)"),
    ({"rule": "threshold", "threshold": float("nan")}, "threshold must be a finite number, got nan"),
    ({"rule": "threshold", "threshold": float("inf")}, "threshold must be a finite number, got inf"),
    ({"rule": "threshold"}, "needs threshold="),
    ({"rule": "knee"}, "unknown rule 'knee'"),
    ({"by": "signed"}, "by must be 'abs' or 'value'"),
    ({"rule": "top_k"}, "needs k between 1 and 12"),
    ({"rule": "top_k", "k": 0}, "k must be from 1 to 12"),
    ({"rule": "top_k", "k": 99}, "k must be from 1 to 12"),
    ({"rule": "top_k", "k": 2.0}, "k must be a whole number"),
    ({"k": 5}, r"k=5 is given but rule='elbow' ignores it"),
    ({"threshold": 0.1}, r"threshold=0\.1 is given but rule='elbow' ignores it"),
]:
    bad("api:selection", f"select_heads {kw_}", lambda c, k=kw_: sel(c, **k), ValueError, match)
bad(
    "api:selection", "select_heads dict", lambda c: select_heads({"A": 1}, "A"), TypeError, "takes HeadScores, not dict"
)
bad(
    "api:selection",
    "select_heads task index",
    lambda c: select_heads(c.s, 7),
    IndexError,
    "task index 7 is out of range",
)
bad("api:selection", "elbow ascending", lambda c: elbow_count([1, 2, 3]), ValueError, "takes a descending curve")
bad("api:selection", "elbow NaN", lambda c: elbow_count([2, np.nan, 1]), ValueError, "finite values")
safe(
    "api:selection",
    "a NaN head is never selected",
    lambda c: select_heads(hand_scores([[[np.nan, 0.9], [0.5, 0.1]]], ["A"]), "A", "top_k", k=3),
    lambda hs, c: hs == [(0, 1), (1, 0), (1, 1)],
)

# --- stats -----------------------------------------------------------------------------------------------

for kw_, error, match in [
    ({"threshold": float("nan")}, ValueError, "threshold must be a finite number, got nan"),
    ({"threshold": float("-inf")}, ValueError, "threshold must be a finite number, got -inf"),
    ({"threshold": "0.1"}, ValueError, "threshold must be a number, got '0.1'"),
    ({"top_k": 0}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": 1, "threshold": 0.1}, ValueError, "give threshold or top_k"),
    ({"top_k": 1, "normalize": "softmax"}, ValueError, "unknown normalize 'softmax'"),
    ({"n": 0}, ValueError, r"n \(resamples\) must be an int ≥ 1"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int"),
    ({"seed": "a"}, ValueError, "seed must be a non-negative int, got 'a'"),
]:
    bad("api:stats", f"bootstrap {kw_}", lambda c, k=kw_: stats.bootstrap(c.s, **k), error, match)
bad("api:stats", "bootstrap one item", lambda c: stats.bootstrap(c.other), ValueError, "has 1 item.*at least 2")
bad("api:stats", "bootstrap a dict", lambda c: stats.bootstrap({}), TypeError, "expected HeadScores, not dict")
bad("api:stats", "always_any one scores", lambda c: stats.always_any(c.s, top_k=1), TypeError, "not one HeadScores")
bad("api:stats", "always_any none", lambda c: stats.always_any([], top_k=1), ValueError, "at least one run")
bad("api:stats", "always_any a str run", lambda c: stats.always_any([c.s, "x"], top_k=1), TypeError, "run 1 is str")
bad("api:stats", "always_any int", lambda c: stats.always_any(5, top_k=1), TypeError, "not int")
bad("api:stats", "always_any no rule", lambda c: stats.always_any([c.s]), ValueError, "give threshold or top_k")
bad("api:stats", "always_any shapes", lambda c: stats.always_any([c.s, c.wide], top_k=1), ValueError, "run 1 has shape")
bad(
    "api:stats",
    "selected 1-d",
    lambda c: stats.selected(np.zeros(3), top_k=1),
    ValueError,
    r"\(\.\.\., layer, head\) arrays",
)

# --- compare ---------------------------------------------------------------------------------------------

for k in (-1, 0, 1.5, 99):
    bad("api:compare", f"compare k={k}", lambda c, k=k: compare.compare(c.s, c.other, k=k), ValueError, "k must be")
bad("api:compare", "compare a str", lambda c: compare.compare(c.s, "b"), TypeError, "b must be HeadScores .* not str")
bad(
    "api:compare",
    "compare no common task",
    lambda c: compare.compare(c.s, hand_scores(np.zeros((1, L, H)), ["Z"])),
    ValueError,
    "no task in common",
)
bad("api:compare", "compare shapes", lambda c: compare.compare(c.s, c.wide), ValueError, "differ in shape")
bad(
    "api:compare",
    "agreement missing task",
    lambda c: compare.agreement(c.s, c.other.select(["A"]), k=3),
    ValueError,
    r"b does not score task\(s\) \['B'\]",
)
bad(
    "api:compare",
    "disagreements n=0",
    lambda c: compare.disagreements(c.s, c.other, "A", n=0),
    ValueError,
    "n must be ≥ 1",
)
bad(
    "api:compare",
    "disagreements unknown task",
    lambda c: compare.disagreements(c.s, c.other, "Nope"),
    KeyError,
    "no task 'Nope'",
)
bad(
    "api:compare",
    "disagreements shapes",
    lambda c: compare.disagreements(c.s, c.wide, "A"),
    ValueError,
    "differ in shape",
)
for k in (0, -1, 13):
    bad("api:compare", f"task_overlap k={k}", lambda c, k=k: compare.task_overlap(c.s, k=k), ValueError, "k must be")
bad(
    "api:compare",
    "relative_depth bins",
    lambda c: compare.relative_depth(c.s, bins=0),
    ValueError,
    "bins must be an int ≥ 1",
)
bad(
    "api:compare",
    "relative_depth a list",
    lambda c: compare.relative_depth([1]),
    TypeError,
    "scores must be HeadScores",
)
bad("api:compare", "cross_model a str", lambda c: compare.cross_model(c.s, "b"), TypeError, "b must be HeadScores")
for args, error, match in [
    ((0.5, 1), ValueError, "layer must be an int, got 0.5"),
    ((0, "1"), ValueError, "head must be an int, got '1'"),
    ((9, 0), ValueError, "head L9.H0 is outside this 3 × 4 model"),
]:
    bad("api:compare", f"patch_path {args}", lambda c, a=args: compare.patch_path(c.model, c.task, *a), error, match)
bad(
    "api:compare",
    "patch_path builtin()",
    lambda c: compare.patch_path(c.model, {"Toy": c.task}, 0, 0),
    TypeError,
    "takes one Task, not dict",
)
bad(
    "api:compare",
    "patch_path alphas str",
    lambda c: compare.patch_path(c.model, c.task, 0, 0, alphas=["a"]),
    ValueError,
    "alphas must be a number",
)
bad(
    "api:compare",
    "patch_path alphas empty",
    lambda c: compare.patch_path(c.model, c.task, 0, 0, alphas=[]),
    ValueError,
    "alphas is empty",
)
bad(
    "api:compare",
    "patch_path alphas nan",
    lambda c: compare.patch_path(c.model, c.task, 0, 0, alphas=[np.nan]),
    ValueError,
    "alphas must be a finite number",
)
bad(
    "api:compare",
    "patch_path partial",
    lambda c: compare.patch_path(c.model, c.partial, 0, 0),
    ValueError,
    r"has no counterfactuals \(or only some items",
)

# --- interventions ------------------------------------------------------------------------------------------


def masked(c, heads, **kw):
    with mask_heads(c.model, heads, **kw):
        pass


for heads, match in [
    ([(0.5, 1)], r"heads\[0\] = \(0\.5, 1\): layer and head must be ints, got 0\.5"),
    ([(0,)], r"heads\[0\] = \(0,\) is not a \(layer, head\) pair"),
    ((0, 1), r"heads=\(0, 1\) is one pair: pass a list of pairs, \[\(0, 1\)\]"),
    ([(0, 1, 2)], r"heads\[0\] = \(0, 1, 2\) is not a \(layer, head\) pair"),
    (None, "heads must be a list of"),
    (5, "heads must be a list of .* not int"),
    ("01", "heads must be a list of"),
    ([(9, 0)], r"head \(9, 0\) is outside this 3 × 4 model"),
    ([(0, -1)], r"head \(0, -1\) is outside"),
    ([(True, 0)], "layer and head must be ints, got True"),
]:
    bad("api:interventions", f"mask_heads {heads!r}", lambda c, h=heads: masked(c, h), ValueError, match)
for kw_, match in [
    ({"mode": "drop"}, "unknown mode 'drop'"),
    ({"mode": "mean"}, "mode='mean' needs means="),
    ({"mode": "scale", "eps": "a"}, "eps must be a finite number, got 'a'"),
    ({"mode": "scale", "eps": float("nan")}, "eps must be a finite number, got nan"),
    ({"mode": "mean", "means": np.zeros((2, 2, 2))}, r"means has shape \(2, 2, 2\), expected \(3, 4, 16\)"),
    ({"mode": "mean", "means": np.full((3, 4, 16), np.nan)}, "means holds NaN or inf"),
    ({"mode": "mean", "means": "x"}, "means must be a numeric"),
]:
    bad("api:interventions", f"mask_heads {kw_!r:.50}", lambda c, k=kw_: masked(c, [(0, 1)], **k), ValueError, match)


def steered(c, directions, alpha=1.0):
    with steer(c.model, directions, alpha):
        pass


for dirs, alpha, match in [
    ([((0, 1), np.zeros(16))], 1.0, "directions must be a dict"),
    ({(0, 1): np.zeros(16)}, float("nan"), "alpha must be a finite number, got nan"),
    ({(0, 1): np.zeros(16)}, "2", "alpha must be a finite number"),
    ({(0, 1): np.zeros(3)}, 1.0, r"direction of head \(0, 1\) must be 16 finite numbers"),
    ({(0, 1): np.full(16, np.inf)}, 1.0, "must be 16 finite numbers"),
    ({(7, 1): np.zeros(16)}, 1.0, r"head \(7, 1\) is outside"),
    ({0: np.zeros(16)}, 1.0, r"heads\[0\] = 0 is not a \(layer, head\) pair"),
]:
    bad("api:interventions", f"steer {match[:30]}", lambda c, d=dirs, a=alpha: steered(c, d, a), ValueError, match)
bad(
    "api:interventions",
    "head_means batch_size",
    lambda c: head_means(c.model, c.task, batch_size=0),
    ValueError,
    "batch_size must be a positive int",
)
bad(
    "api:interventions",
    "head_means too long",
    lambda c: head_means(c.model, c.long),
    ValueError,
    "item 0's prompt is 301 tokens but the model takes at most 256",
)
bad("api:interventions", "head_means a str", lambda c: head_means(c.model, "Toy"), TaskError, "not the string 'Toy'")

# --- validation ------------------------------------------------------------------------------------------


def two_task_curves():
    from headlab.analysis.validation import Faithfulness

    zeros = np.zeros
    return Faithfulness(
        ["a"],
        ["A", "B"],
        np.array([1, 2]),
        zeros(2),
        zeros(2),
        zeros((1, 2, 2)),
        zeros((1, 2, 2)),
        zeros((2, 2, 10)),
        zeros((2, 2, 10)),
    )


bad(
    "api:curves",
    "a task needed",
    lambda c: plot_curves(two_task_curves()),
    ValueError,
    r"these curves hold 2 tasks: name one as task=, one of \['A', 'B'\], or draw every task with "
    r"headlab.viz.curves.faithfulness_grid\(curves\)",
)
bad(
    "api:curves", "unknown task", lambda c: plot_curves(two_task_curves(), "C"), KeyError, "no task 'C' in these curves"
)

elbow8 = lambda: hand_scores([np.r_[np.ones(9), np.zeros(L * H - 9)].reshape(L, H)], ["Toy"])  # noqa: E731
kwv = dict(n_random=10, progress=False)
bad(
    "api:validation",
    "k = all but one",
    lambda c: validate(c.model, c.toy_scores, c.task, k=11, **kwv),
    ValueError,
    r"k=11, but a 3 × 4 model leaves only 1 other heads .* the largest usable k is 6",
)
bad(
    "api:validation",
    "k = all",
    lambda c: validate(c.model, c.toy_scores, c.task, k=12, **kwv),
    ValueError,
    "leaves only 0 other heads .* largest usable k is 6",
)
bad(
    "api:validation",
    "k = 7 of 12",
    lambda c: validate(c.model, c.toy_scores, c.task, k=7, **kwv),
    ValueError,
    "largest usable k is 6",
)
bad(
    "api:validation",
    "elbow picks too many",
    lambda c: validate(c.model, elbow8(), c.task, **kwv),
    ValueError,
    r"the elbow picks 8 heads of 'Toy'.*largest usable k is 6",
)
bad(
    "api:validation",
    "k=0",
    lambda c: validate(c.model, c.toy_scores, c.task, k=0, **kwv),
    ValueError,
    "k must be from 1 to 12",
)
bad(
    "api:validation",
    "k=-1",
    lambda c: validate(c.model, c.toy_scores, c.task, k=-1, **kwv),
    ValueError,
    "k must be from 1",
)
bad(
    "api:validation",
    "n_random 3",
    lambda c: validate(c.model, c.toy_scores, c.task, n_random=3),
    ValueError,
    "at least 10",
)
bad(
    "api:validation",
    "n_random 10.5",
    lambda c: validate(c.model, c.toy_scores, c.task, n_random=10.5),
    ValueError,
    "at least 10",
)
bad(
    "api:validation",
    "mode",
    lambda c: validate(c.model, c.toy_scores, c.task, mode="drop", **kwv),
    ValueError,
    "unknown mode 'drop'",
)
bad(
    "api:validation",
    "seed",
    lambda c: validate(c.model, c.toy_scores, c.task, seed=-2, **kwv),
    ValueError,
    "seed must be",
)
bad(
    "api:validation",
    "by",
    lambda c: validate(c.model, c.toy_scores, c.task, by="signed", **kwv),
    ValueError,
    "by must be",
)
bad(
    "api:validation",
    "cross_task",
    lambda c: validate(c.model, c.toy_scores, c.task, cross_task="yes", **kwv),
    ValueError,
    "cross_task must be True or False",
)
bad(
    "api:validation",
    "scores of another model",
    lambda c: validate(c.model, hand_scores(np.ones((1, 2, 5)), ["Toy"]), c.task, k=2, **kwv),
    ValueError,
    r"scores are of a 2 × 5 model .* but the model is 3 × 4",
)
bad(
    "api:validation",
    "scores a dict",
    lambda c: validate(c.model, {}, c.task),
    TypeError,
    r"takes one HeadScores as scores=, not dict \(several maps: headlab\.faithfulness\(model, maps, tasks, ks=\.\.\.\) "
    r"draws their curves\)",
)
bad(
    "api:validation",
    "tasks and scores swapped",
    lambda c: validate(c.model, c.task, c.toy_scores, **kwv),
    TypeError,
    r"validate\(\) got tasks as scores=: the order is validate\(model, scores, tasks\)",
)
bad(
    "api:validation",
    "ks= for curves",
    lambda c: validate(c.model, c.toy_scores, c.task, ks=(1, 2), **kwv),
    ValueError,
    r"validate\(\) masks one k and returns a Validation: for the curves along many k call "
    r"headlab\.faithfulness\(model, maps, tasks, ks=\.\.\.\)",
)
bad(
    "api:validation",
    "faithfulness with tasks and scores swapped",
    lambda c: faithfulness(c.model, {"Toy": c.task}, c.toy_scores, ks=(1, 2)),
    TypeError,
    r"faithfulness\(\) got tasks as scores=: the order is faithfulness\(model, scores, tasks\)",
)
bad(
    "api:validation",
    "task not scored",
    lambda c: validate(c.model, c.toy_scores, c.partial, **kwv),
    ValueError,
    r"tasks \['Partial'\] are not in the scores",
)
bad(
    "api:validation",
    "layer_matched_random too many",
    lambda c: layer_matched_random(
        [(0, h) for h in range(4)] + [(1, 0), (1, 1), (1, 2)], 3, 4, np.random.default_rng(0)
    ),
    ValueError,
    "7 top heads leave only 5 other heads .* use at most 6",
)

# --- steering -----------------------------------------------------------------------------------------------

for alphas, match in [
    ([np.nan], "alphas must be a non-empty list of finite numbers"),
    (5, "alphas must be a list"),
    ([], "non-empty"),
]:
    bad(
        "api:steering",
        f"alphas {alphas!r}",
        lambda c, a=alphas: steering_sweep(c.model, c.toy_scores, c.task, alphas=a),
        ValueError,
        match,
    )
bad(
    "api:steering",
    "scores of another model",
    lambda c: steering_sweep(c.model, c.wide, c.task),
    ValueError,
    "scores are of a 2 × 5 model",
)
bad(
    "api:steering",
    "tasks and scores swapped",
    lambda c: steering_sweep(c.model, [c.task], c.toy_scores),
    TypeError,
    r"steering_sweep\(\) got tasks as scores=: the order is steering_sweep\(model, scores, tasks\)",
)
bad(
    "api:steering",
    "task not scored",
    lambda c: steering_sweep(c.model, c.toy_scores, c.partial),
    ValueError,
    "not in the scores",
)
bad(
    "api:steering",
    "k=0",
    lambda c: steering_sweep(c.model, c.toy_scores, c.task, k=0),
    ValueError,
    "k must be from 1 to 12",
)
bad(
    "api:steering",
    "seed",
    lambda c: steering_sweep(c.model, c.toy_scores, c.task, seed="x"),
    ValueError,
    "seed must be",
)

# --- plots ------------------------------------------------------------------------------------------------

grid = lambda c, **kw: plot.heatmap_grid(c.s, **kw)  # noqa: E731
for kw_, error, match in [
    ({"ncols": 0}, ValueError, "ncols must be ≥ 1, got 0"),
    ({"ncols": 1.5}, ValueError, "ncols must be a whole number"),
    ({"threshold": float("nan")}, ValueError, "threshold must be a finite number, got nan"),
    ({"threshold": float("inf")}, ValueError, "threshold must be a finite number, got inf"),
    ({"threshold": "0.1"}, ValueError, "threshold must be a number, got '0.1'"),
    ({"top_k": 0}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": -1}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": 99}, ValueError, "top_k must be from 1 to 12"),
    ({"top_k": 2, "threshold": 0.1}, ValueError, "give one of threshold, top_k or elbow, not threshold and top_k"),
    ({"elbow": True, "top_k": 2}, ValueError, "give one of threshold, top_k or elbow"),
    ({"elbow": "yes"}, ValueError, "elbow must be True or False"),
    ({"normalize": "softmax"}, ValueError, "unknown normalize 'softmax'"),
    ({"vmax": 0}, ValueError, "vmax must be a positive number"),
    ({"vmax": float("nan")}, ValueError, "vmax must be a finite number"),
    ({"vmax": "a"}, ValueError, "vmax must be a number"),
    ({"by": "signed"}, ValueError, "by must be 'value' .* or 'abs'"),
    ({"cmap": "nope"}, ValueError, "unknown cmap 'nope'"),
    ({"cmap": 5}, TypeError, "cmap must be a colour map name"),
    ({"figsize": (0, 1)}, ValueError, "figsize must be .* two positive numbers"),
    ({"figsize": "big"}, ValueError, "figsize must be"),
    ({"figsize": (0.5, 0.5)}, ValueError, "too small"),
    ({"tasks": ["Nope"]}, ValueError, r"unknown task\(s\) \['Nope'\]"),
    ({"tasks": []}, ValueError, "no tasks selected"),
    ({"tasks": ["A", "A"]}, ValueError, "named twice"),
    ({"tasks": 5}, TypeError, "tasks must be a task name or a list"),
    ({"significant": np.ones((2, 2))}, ValueError, r"significant must be a bool array of shape \(2, 3, 4\)"),
]:
    bad("api:plot", f"heatmap_grid {kw_!r:.40}", lambda c, k=kw_: grid(c, **k), error, match)
bad("api:plot", "heatmap_grid a dict", lambda c: plot.heatmap_grid({}), TypeError, "expected HeadScores")
bad(
    "api:plot",
    "update threshold nan",
    lambda c: grid(c)._headlab_view.update(threshold=float("nan")),
    ValueError,
    "threshold must be a finite number",
)
bad("api:plot", "update top_k 0", lambda c: grid(c)._headlab_view.update(top_k=0), ValueError, "top_k must be from 1")
bad("api:plot", "heatmap unknown task", lambda c: plot.heatmap(c.s, "Nope"), ValueError, "unknown task")
bad("api:plot", "heatmap ax", lambda c: plot.heatmap(c.s, "A", ax="left"), TypeError, "ax must be a matplotlib Axes")
bad("api:plot", "always_any_grid str", lambda c: plot.always_any_grid("x"), TypeError, "takes stats.always_any")
bad("api:plot", "plot_matrix list", lambda c: plot.plot_matrix([[1]]), TypeError, "takes a non-empty pandas DataFrame")
bad(
    "api:plot",
    "plot_matrix vmin>vmax",
    lambda c: plot.plot_matrix(pd.DataFrame([[1.0]]), vmin=1, vmax=0),
    ValueError,
    "vmin .* must be below vmax",
)
bad("api:plot", "plot_matrix text", lambda c: plot.plot_matrix(pd.DataFrame([["a"]])), ValueError, "numeric DataFrame")
bad("api:plot", "save jpg", lambda c: plot.save(grid(c), c.tmp / "x.jpg"), ValueError, "cannot save as '.jpg'")
bad("api:plot", "save a str", lambda c: plot.save("fig", c.tmp / "x.png"), TypeError, "takes a matplotlib Figure")
bad("api:plot", "save path None", lambda c: plot.save(grid(c), None), ValueError, "needs a file path")
bad(
    "api:plot",
    "attention_pattern shape",
    lambda c: plot.attention_pattern(np.zeros((2, 2)), ["a"]),
    ValueError,
    r"expected \(1, 1\)",
)
bad(
    "api:plot",
    "compare_scatter unknown task",
    lambda c: plot.compare_scatter(c.s, c.other, task="Nope"),
    ValueError,
    r"task\(s\) \['Nope'\] are not scored by both",
)
bad("api:plot", "compare_scatter a str", lambda c: plot.compare_scatter(c.s, "b"), TypeError, "expected HeadScores")
bad(
    "api:plot",
    "cross_model_plot bins",
    lambda c: plot.cross_model_plot(c.s, c.other, bins=0),
    ValueError,
    "bins must be",
)


def nan_grid(c):
    values = c.s.values.copy()
    values[0, 1, 2] = np.nan
    s = hand_scores(values, ["A", "B"])
    return s, plot.heatmap_grid(s, top_k=2)


def nan_grid_ok(out, c):
    s, fig = out
    view = fig._headlab_view
    shown = view.displayed()[0]
    expected = s.normalized("share")[0]
    finite = ~np.isnan(expected)
    scale = view.scale()
    return (
        np.isnan(shown[1, 2])
        and finite.sum() == L * H - 1
        and np.allclose(shown[finite], expected[finite])  # the panel is drawn, not blanked
        and view.counts[0].get_text() == "top 2 by s · 1 NaN"
        and view.counts[1].get_text() == "top 2 by s"
        and np.isfinite([scale.lo, scale.hi]).all()
        and tuple(np.asarray(view.images[0].get_array())[1, 2, :3]) == (84, 84, 84)
    )


safe("api:plot", "a NaN head is dark grey, its panel drawn", nan_grid, nan_grid_ok)

# --- explorer ------------------------------------------------------------------------------------------------

bad(
    "explorer",
    "models a list",
    lambda c: widgets.explorer(models=[c.model], scores=c.toy_scores),
    ValueError,
    "models= takes a dict name → model",
)
bad(
    "explorer",
    "models empty",
    lambda c: widgets.explorer(models={}, scores=c.toy_scores),
    ValueError,
    "at least one model",
)
bad(
    "explorer",
    "models int key",
    lambda c: widgets.explorer(models={1: c.model}, scores=c.toy_scores),
    ValueError,
    "models= keys are the names",
)
bad(
    "explorer",
    "unknown method",
    lambda c: explorer(c, c.toy_scores, methods=["gradient"]),
    ValueError,
    "unknown method 'gradient'",
)
bad("explorer", "no methods", lambda c: explorer(c, c.toy_scores, methods=[]), ValueError, "at least one method")
bad(
    "explorer",
    "methods an int",
    lambda c: explorer(c, c.toy_scores, methods=5),
    ValueError,
    "takes a list of method labels",
)
safe(
    "explorer",
    "one method label",
    lambda c: explorer(c, c.toy_scores, methods="attribution · resample"),
    lambda ex, c: list(ex.controls["method"].options) == ["attribution · resample"] and ex.state.message == "",
)
bad("explorer", "scores a str", lambda c: explorer(c, "scores.npz"), TypeError, "scores= takes HeadScores, not str")
bad(
    "explorer",
    "scores of other tasks",
    lambda c: explorer(c, c.toy_scores, tasks=[c.partial]),
    ValueError,
    "give the same tasks",
)
safe(
    "explorer",
    "scores of a method not in methods= get its entry",
    lambda c: explorer(c, c.toy_scores, methods=["ablation · zero"]),
    lambda ex, c: (
        ex.controls["method"].value == "attribution · resample"
        and list(ex.controls["method"].options) == ["ablation · zero", "attribution · resample"]
    ),
)
bad(
    "explorer",
    "scores of another model shape",
    lambda c: explorer(c, hand_scores(np.ones((1, 2, 5)), ["Toy"]), tasks=[c.task]),
    ValueError,
    r"explorer\(scores=\) on model 'tiny': scores are of a 2 × 5 model \(tiny-3x4-d64-s0\) but the model is 3 × 4",
)
bad(
    "explorer",
    "scores of another shape, model loaded lazily",
    lambda c: explorer(
        c, hand_scores(np.ones((1, 2, 5)), ["Toy"]), tasks=[c.task], models={"tiny": lambda: c.model}
    ).details("Toy", 0, 0),
    ValueError,
    "scores are of a 2 × 5 model",
)
bad(
    "explorer",
    "user task named like a built-in: no built-in details",
    lambda c: explorer(c, c.mine_scores).details("Retrieval", 0, 0),
    TaskError,
    r"do not record being computed on the built-in items of \['Retrieval'\]: pass explorer\(tasks=",
)


def recompute_user_task(c):
    ex = explorer(c, c.mine_scores)
    ex.controls["method"].value = "attribution · zero"
    ex.wait(60)
    shown_error(ex)


bad(
    "explorer",
    "user task named like a built-in: no built-in recompute",
    recompute_user_task,
    WidgetError,
    "these scores do not record being computed on the built-in items",
)
bad(
    "explorer",
    "tasks= with other items than the scores",
    lambda c: explorer(c, c.mine_scores, tasks=[Task.from_records("Retrieval", [GOOD])]),
    ValueError,
    r"computed on other items than tasks= gives for \['Retrieval'\]",
)
bad(
    "explorer",
    "non-built-in names without tasks=",
    lambda c: explorer(c, c.toy_scores).details("Toy", 0, 0),
    TaskError,
    r"unknown built-in task\(s\) \['Toy'\]: pass explorer\(tasks=",
)
safe(
    "explorer",
    "user tasks given: details use them",
    lambda c: explorer(c, c.mine_scores, tasks=[c.mine]).details("Retrieval", 0, 0),
    lambda d, c: "".join(d.tokens[1:]) == c.mine.items[0].prompt,
)
bad(
    "explorer",
    "details unknown task",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Nope", 0, 0),
    ValueError,
    "unknown task 'Nope'",
)
bad(
    "explorer",
    "details float layer",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Toy", 0.5, 0),
    ValueError,
    "layer must be an int, got 0.5",
)
bad(
    "explorer",
    "details head out of range",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Toy", 0, 9),
    ValueError,
    "no head L0.H9: layers are 0–2, heads 0–3",
)
bad(
    "explorer",
    "details item out of range",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task]).details("Toy", 0, 0, item=99),
    ValueError,
    "no item 99 in 'Toy': it has items 0–5",
)
bad(
    "explorer",
    "model by an unknown name",
    lambda c: explorer(c, c.toy_scores, tasks=[c.task], models={"m": "gpt-17"}).details("Toy", 0, 0),
    ModelLoadError,
    "unknown model alias 'gpt-17'",
)


def no_task_selected(c):
    ex = explorer(c, c.toy_scores, tasks=[c.task])
    ex.controls["tasks"].value = ()
    shown_error(ex)


bad(
    "explorer",
    "no task selected",
    no_task_selected,
    WidgetError,
    "no task selected: tick at least one task",
)


def nan_explorer(c):
    values = c.toy_scores.values.copy()
    values[0, 0, 0] = np.nan
    s = c.toy_scores
    return explorer(
        c,
        replace(s, values=values),
        tasks=[c.task],
    )


safe(
    "explorer",
    "NaN scores: slider and grid still work",
    nan_explorer,
    lambda ex, c: ex.state.message == "" and np.isfinite(ex.controls["threshold"].max),
)

# --- command line ---------------------------------------------------------------------------------------------

bad(
    "cli",
    "--top -1",
    lambda c: run_cli("score", "--top", "-1"),
    CLIError,
    "--top must be a positive number of heads, got -1",
)
bad("cli", "--top 0", lambda c: run_cli("eval", "--top", "0"), CLIError, "--top must be a positive")
bad(
    "cli", "--top abc", lambda c: run_cli("score", "--top", "abc"), CLIError, "argument --top: invalid int value: 'abc'"
)
bad(
    "cli",
    "--tasks unknown",
    lambda c: run_cli("eval", "--tasks", "Telepathy"),
    CLIError,
    r"unknown task\(s\) \['Telepathy'\]",
)
bad(
    "cli",
    "--tasks wrong case",
    lambda c: run_cli("eval", "--tasks", "retrieval"),
    CLIError,
    r"did you mean \['Retrieval'\]",
)
bad("cli", "--tasks empty", lambda c: run_cli("eval", "--tasks", ","), CLIError, "--tasks ',' names no task")
bad(
    "cli",
    "--method unknown",
    lambda c: run_cli("score", "--method", "magic"),
    CLIError,
    "argument --method: invalid choice: 'magic'",
)
bad(
    "cli",
    "--ablation unknown",
    lambda c: run_cli("score", "--ablation", "random"),
    CLIError,
    "argument --ablation: invalid choice",
)
bad(
    "cli",
    "--metric unknown",
    lambda c: run_cli("score", "--metric", "acc"),
    CLIError,
    "argument --metric: invalid choice",
)
bad(
    "cli",
    "--steps not a number",
    lambda c: run_cli("score", "--steps", "two"),
    CLIError,
    r"attribution option steps='two': give the number of integrated-gradient points, a whole number ≥ 1",
)
bad(
    "cli",
    "--steps for a method without it",
    lambda c: run_cli("score", "--method", "ablation", "--steps", "2"),
    CLIError,
    r"method 'ablation' takes no options, got \['steps'\]",
)
bad(
    "cli",
    "--path unknown",
    lambda c: run_cli("score", "--path", "inputs"),
    CLIError,
    r"attribution option path='inputs': choose from \('activations', 'layers'\)",
)
bad("cli", "--items 0", lambda c: run_cli("score", "--items", "0"), CLIError, "--items must be a positive number")
bad(
    "cli",
    "--cogqa missing",
    lambda c: run_cli("eval", "--cogqa", str(c.tmp / "nope.json")),
    CLIError,
    "CogQA file not found",
)
bad(
    "cli",
    "--cogqa latin-1",
    lambda c: run_cli("eval", "--cogqa", write(c, "cli-latin.json", b'[{"question": "caf\xe9"}]')),
    CLIError,
    "is not UTF-8",
)
bad(
    "cli",
    "--cogqa unknown task",
    lambda c: run_cli("eval", "--cogqa", cogqa(c, "cli.json", [q(sub())]), "--tasks", "Inference"),
    CLIError,
    r"unknown task\(s\) \['Inference'\]; choose from \['Retrieval'\]",
)
bad(
    "cli",
    "--out a file",
    lambda c: run_cli("score", "--out", write(c, "a-file", "x")),
    CLIError,
    "is a file: name a folder",
)


def taken_out(c):
    out = c.tmp / "taken"
    out.mkdir(exist_ok=True)
    (out / "scores.npz").write_bytes(b"")
    return run_cli("score", "--out", str(out))


bad("cli", "--out holds outputs", taken_out, CLIError, "already holds scores.npz: pass --overwrite")
bad(
    "cli",
    "--model unknown",
    lambda c: run_cli("eval", "--model", "gpt-17", "--tasks", "Retrieval"),
    CLIError,
    "headlab: unknown model alias 'gpt-17'",
)
bad(
    "cli",
    "--device unknown",
    lambda c: run_cli("eval", "--device", "banana", "--tasks", "Retrieval"),
    CLIError,
    "headlab: device='banana' is not a device",
)
bad(
    "cli",
    "--dtype unknown",
    lambda c: run_cli("eval", "--dtype", "int8", "--tasks", "Retrieval"),
    CLIError,
    "headlab: dtype='int8': converting weights to int8 would destroy them",
)
bad("cli", "no command", lambda c: run_cli(), CLIError, "the following arguments are required")


# --- the tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ctx):
    if case.error is None:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            out = case.run(ctx)
        said = [str(w.message) for w in seen if not issubclass(w.category, DeprecationWarning)]
        if case.match is not None:
            assert any(re.search(case.match, m) for m in said), said
        else:
            assert not [m for m in said if "tokenizer has" in m or "identical" in m], said
        assert case.check(out, ctx)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error) as info:
            case.run(ctx)
    text = message(info.value)
    assert re.search(case.match, text), text
    MESSAGES[case.id] = text


def test_catalogue_size_and_one_line_messages(ctx):
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), [i for i in ids if ids.count(i) > 1]
    assert len(CASES) >= 150, len(CASES)
    by_entry = {}
    for c in CASES:
        by_entry[c.entry.split(":")[0]] = by_entry.get(c.entry.split(":")[0], 0) + 1
    assert {"api", "loader", "cli", "explorer"} <= set(by_entry), by_entry
    errors = [c for c in CASES if c.error is not None]
    for c in errors:  # cases not run in this session (e.g. under -k): run them here
        if c.id not in MESSAGES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    c.run(ctx)
                except c.error as err:
                    MESSAGES[c.id] = message(err)
    multi = [(i, m) for i, m in MESSAGES.items() if "\n" in m.strip()]
    assert len(multi) <= 0.05 * len(errors), multi
