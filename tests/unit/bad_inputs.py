"""Never a silent wrong map: the machinery of the bad-input cases that each module's test file holds.

Each case is one call and one assertion: either the exception it raises (its type, and a regex of its message,
which must name the argument, the value or what to do, on one line), or — for inputs that are legitimate but
easy to get wrong — the safe outcome (a warning and the right result). A test file keeps its cases in a
``Catalogue`` named by where the bad input enters ("api:<module>", "loader", "cli" or "explorer"), which
prefixes each case's name, and runs them with one parametrized test over the shared context that
``tests/unit/conftest.py`` builds once per session (the ``bad_inputs`` fixture)::

    CASES = Catalogue("api:stats")
    bad, safe = CASES.bad, CASES.safe

    bad("bootstrap one item", lambda c: stats.bootstrap(c.other), ValueError, "has 1 item.*at least 2")


    @pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
    def test_bad_input(case, bad_inputs):
        case.check(bad_inputs)

``test_bad_input_catalogue.py`` counts the cases of every file and checks that their names are unique.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from headlab.models import ModelInfo
from headlab.results import HeadScores
from headlab.scoring import score
from headlab.tasks import Task
from headlab.testing import head_scores

L, H = 3, 4  # conftest's tiny_model
GOOD = {"prompt": "2 + 2 =", "answer": " 4", "counterfactual": "2 + 3 =", "counterfactual_answer": " 5"}
PLAIN = {"prompt": "1 + 1 =", "answer": " 2"}


# --- the cases -----------------------------------------------------------------------------------------------


def message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


@dataclass(frozen=True)
class Bad:
    """A bad input: ``run(ctx)`` raises ``error`` with a one-line message that ``match`` (a regex) finds."""

    name: str
    run: Callable[[Any], Any]
    error: type[BaseException]
    match: str

    def check(self, ctx) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(self.error) as info:
                self.run(ctx)
        text = message(info.value)
        assert re.search(self.match, text), text
        assert "\n" not in text.strip(), f"the message is not one line: {text!r}"


@dataclass(frozen=True)
class Safe:
    """A legitimate input that is easy to get wrong: ``run(ctx)`` returns ``out`` with ``ok(out, ctx)``, and
    warns ``warns`` (a regex of one warning) — or, with ``warns=None``, never warns of a tokenizer's size or of
    identical counterfactuals."""

    name: str
    run: Callable[[Any], Any]
    ok: Callable[[Any, Any], bool]
    warns: str | None = None

    def check(self, ctx) -> None:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            out = self.run(ctx)
        said = [str(w.message) for w in seen if not issubclass(w.category, DeprecationWarning)]
        if self.warns is not None:
            assert any(re.search(self.warns, m) for m in said), said
        else:
            assert not [m for m in said if "tokenizer has" in m or "identical" in m], said
        assert self.ok(out, ctx)


class Catalogue(list):
    """One file's cases, named ``"<entry>:<id>"``; a repeated id gets " #2", " #3", …"""

    def __init__(self, entry: str):
        super().__init__()
        self.entry = entry

    def _name(self, id: str) -> str:
        taken = {case.name for case in self}
        name, n = f"{self.entry}:{id}", 1
        while name in taken:
            n += 1
            name = f"{self.entry}:{id} #{n}"
        return name

    def bad(self, id: str, run, error: type[BaseException], match: str) -> None:
        self.append(Bad(self._name(id), run, error, match))

    def safe(self, id: str, run, ok, warns: str | None = None) -> None:
        self.append(Safe(self._name(id), run, ok, warns))


# --- the shared context and helpers -----------------------------------------------------------------------------


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


def context(tiny_model, tiny_llama, toy_task, tmp: Path) -> SimpleNamespace:
    """What the cases take as ``c``: the tiny models, tasks made to be wrong, and hand-made scores."""
    c = SimpleNamespace(model=tiny_model, hf=tiny_llama, task=toy_task, tmp=tmp)
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
