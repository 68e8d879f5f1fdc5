"""Tasks: named sets of prompt/answer items, with counterfactual pairs for patching.

An item is ``prompt`` → ``answer`` (a continuation, usually starting with a space) and, optionally,
``counterfactual`` → ``counterfactual_answer``: the same template with a minimal change. Resample
ablation and attribution patching need the pair; zero/mean ablation and the ``logprob`` metric do not.

- ``builtin()``: the eight cognitive functions, in the papers' 2 × 4 grid order.
- ``Task.from_records / from_jsonl / from_dataframe``: your own tasks, validated.
- ``load_cogqa(path)``: the Cognitive Mirrors CogQA JSON, read from a path (never bundled).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import numbers
import os
import warnings
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from .errors import InputError

__all__ = ["Item", "TASK_NAMES", "Task", "TaskError", "as_task_list", "builtin", "load_cogqa", "read_text"]

TASK_NAMES = (
    "Knowledge Recall",
    "Retrieval",
    "Logical Reasoning",
    "Decision-making",
    "Semantic Understanding",
    "Syntactic Understanding",
    "Inference",
    "Math Calculation",
)
_FILES = {name: name.lower().replace("-", "_").replace(" ", "_") + ".jsonl" for name in TASK_NAMES}
FIELDS = ("prompt", "answer", "counterfactual", "counterfactual_answer")


class TaskError(InputError):
    """A task or item is malformed; the message names the item and the fix."""


@dataclass(frozen=True)
class Item:
    prompt: str
    answer: str
    counterfactual: str | None = None
    counterfactual_answer: str | None = None

    @property
    def has_counterfactual(self) -> bool:
        return self.counterfactual is not None


@dataclass(frozen=True)
class Task:
    """A named, ordered, validated tuple of ``Item``s."""

    name: str
    items: tuple[Item, ...]
    source: str = "custom"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise TaskError(f"a task needs a non-empty string name, got {self.name!r}")
        if not isinstance(self.items, tuple) or not all(isinstance(it, Item) for it in self.items):
            raise TaskError(
                f"task {self.name!r}: items must be a tuple of Item; build tasks from dicts with Task.from_records"
            )
        if not isinstance(self.source, str):
            raise TaskError(f"task {self.name!r}: source must be a string, got {self.source!r}")
        if not self.items:
            raise TaskError(f"task {self.name!r} has no items: give it at least one record")
        seen = {}
        for i, item in enumerate(self.items):
            key = (item.prompt, item.answer)
            if key in seen:
                raise TaskError(
                    f"task {self.name!r}: item {i} duplicates item {seen[key]} (same prompt and answer): remove it"
                )
            seen[key] = i

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __repr__(self) -> str:
        kind = "with counterfactuals" if self.has_counterfactuals else "no counterfactuals"
        return f"Task({self.name!r}, {len(self)} items, {kind}, source={self.source!r})"

    @property
    def has_counterfactuals(self) -> bool:
        return all(item.has_counterfactual for item in self.items)

    def content_hash(self) -> str:
        """sha256 of the name and items: the cache key of everything computed on this task."""
        blob = json.dumps([self.name, [asdict(it) for it in self.items]], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def subset(self, n: int) -> Task:
        """The first ``n`` items (for quick runs; all of them when n exceeds their number)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise TaskError(f"task {self.name!r}: subset(n) needs a positive int n, got {n!r}")
        return Task(self.name, self.items[:n], self.source)

    # --- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_records(cls, name: str, records: Iterable[Mapping], source: str = "custom") -> Task:
        """Build from dicts with ``prompt``, ``answer`` and optional counterfactual fields."""
        if not isinstance(name, str) or not name.strip():
            raise TaskError(f"a task needs a non-empty string name, got {name!r}")
        if isinstance(records, Mapping):
            raise TaskError(f"task {name!r}: records is one dict: pass a list of them, [record]")
        if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
            raise TaskError(
                f"task {name!r}: records must be a list of dicts with prompt/answer, not {type(records).__name__}"
            )
        items = tuple(_item_from_record(name, i, rec) for i, rec in enumerate(records))
        return cls(name, items, source)

    @classmethod
    def from_jsonl(cls, path, name: str | None = None) -> Task:
        """One JSON object per line (UTF-8); the task is named after the file unless ``name`` is given."""
        path = Path(check_path("path", path))
        if path.is_dir():
            raise TaskError(f"{path} is a folder: name a .jsonl file")
        if not path.is_file():
            raise TaskError(f"no such task file: {path}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise TaskError(f"name must be a non-empty string, got {name!r}")
        records, lines = [], []
        for lineno, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise TaskError(f"{path}:{lineno}: not valid JSON ({err.msg}): fix that line") from None
            if not isinstance(rec, dict):
                raise TaskError(f"{path}:{lineno}: a {type(rec).__name__}, not an object with prompt/answer")
            records.append(rec)
            lines.append(lineno)
        if not records:
            raise TaskError(f"{path} holds no records: one JSON object per line, with prompt and answer")
        name = name or path.stem.replace("_", " ").title()
        try:
            return cls.from_records(name, records, source=str(path))
        except TaskError as err:  # name the file's line, not only the item's index
            msg = str(err)
            for i, lineno in enumerate(lines):
                if f": item {i} " in msg:
                    raise TaskError(f"{path}:{lineno}: {msg}") from None
            raise

    @classmethod
    def from_dataframe(cls, df, name: str) -> Task:
        """From a pandas DataFrame with columns ``prompt``, ``answer`` (and optional counterfactual columns);
        other columns are refused, as unknown fields are by ``from_records``."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise TaskError(f"task {name!r}: from_dataframe() takes a pandas DataFrame, not {type(df).__name__}")
        missing = [c for c in ("prompt", "answer") if c not in df.columns]
        if missing:
            raise TaskError(f"task {name!r}: the DataFrame lacks column(s) {missing}: add them")
        unknown = [str(c) for c in df.columns if c not in FIELDS]
        if unknown:
            raise TaskError(
                f"task {name!r}: the DataFrame has unknown column(s) {unknown}; allowed: {list(FIELDS)} "
                "(drop or rename them)"
            )
        if df.columns.duplicated().any():
            raise TaskError(f"task {name!r}: the DataFrame has duplicate columns {list(df.columns)}")
        cols = [c for c in FIELDS if c in df.columns]
        records = [
            {c: (None if _isna(v) else v) for c, v in zip(cols, row)} for row in df[cols].itertuples(index=False)
        ]
        return cls.from_records(name, records, source="dataframe")


def _isna(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def check_path(name: str, path):
    """``path`` as a str or PathLike; a one-line TaskError naming ``name`` for anything else (None, a number)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise TaskError(f"{name} must be a file path, got {path!r}")
    return path


def read_text(path: Path) -> str:
    """The file's text as UTF-8; a one-line TaskError naming the file and the encoding when it is not."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TaskError(
            f"{path} is not UTF-8 (byte 0x{err.object[err.start]:02x} at offset {err.start}; latin-1 or cp1252?): "
            "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _item_from_record(task: str, i: int, rec: Mapping) -> Item:
    if not isinstance(rec, Mapping):
        raise TaskError(f"task {task!r}: item {i} is a {type(rec).__name__}, not a dict with prompt/answer")
    unknown = set(rec) - set(FIELDS)
    if unknown:
        raise TaskError(f"task {task!r}: item {i} has unknown field(s) {sorted(unknown)}; allowed: {list(FIELDS)}")
    for field in ("prompt", "answer"):
        value = rec.get(field)
        if value is not None and not isinstance(value, str):
            raise TaskError(
                f"task {task!r}: item {i} {field!r} is a {type(value).__name__} ({value!r:.40}), not a string"
            )
        if not isinstance(value, str) or not value.strip():
            raise TaskError(f"task {task!r}: item {i} is missing a non-empty {field!r} string")
    cf, cf_answer = rec.get("counterfactual"), rec.get("counterfactual_answer")
    if (cf is None) != (cf_answer is None):
        raise TaskError(
            f"task {task!r}: item {i} has only one of 'counterfactual'/'counterfactual_answer': give both or neither"
        )
    if cf is not None:
        for field, value in (("counterfactual", cf), ("counterfactual_answer", cf_answer)):
            if not isinstance(value, str):
                raise TaskError(
                    f"task {task!r}: item {i} {field!r} is a {type(value).__name__} ({value!r:.40}), not a string"
                )
        if not cf.strip() or not cf_answer.strip():
            raise TaskError(f"task {task!r}: item {i} has an empty counterfactual or counterfactual_answer")
        if cf_answer == rec["answer"]:
            raise TaskError(f"task {task!r}: item {i} has counterfactual_answer equal to answer: the pair must differ")
    return Item(rec["prompt"], rec["answer"], cf, cf_answer)


def builtin(names: Iterable[str] | str | None = None) -> OrderedDict[str, Task]:
    """The eight built-in cognitive tasks (or the named subset — one name alone too), in grid order."""
    if isinstance(names, str):
        names = [names]
    if names is not None and not isinstance(names, Iterable):
        raise TaskError(f"builtin() takes task names (a name or a list), not {type(names).__name__}")
    names = list(TASK_NAMES if names is None else names)
    unknown = [n for n in names if not isinstance(n, str) or n not in _FILES]
    if unknown:
        close = [m for n in unknown if isinstance(n, str) for m in difflib.get_close_matches(n, TASK_NAMES, 1, 0.6)]
        hint = f" (did you mean {close}?)" if close else ""
        raise TaskError(f"unknown built-in task(s) {unknown}{hint}: choose from {list(TASK_NAMES)}")
    if not names:
        raise TaskError(f"builtin() got no names: pass None for all eight, or some of {list(TASK_NAMES)}")
    data = resources.files("headlab") / "data" / "tasks"
    out = OrderedDict()
    for name in names:
        records = [json.loads(line) for line in (data / _FILES[name]).read_text(encoding="utf-8").splitlines() if line]
        out[name] = Task.from_records(name, records, source="builtin")
    return out


def as_task_list(tasks) -> list[Task]:
    """Accept one Task, a list (or any iterable, a generator too) of Tasks, or a mapping name → Task (e.g.
    ``builtin()``) whose keys are the tasks' names."""
    if isinstance(tasks, Task):
        return [tasks]
    usage = "tasks must be a Task, a list of Tasks, or a mapping like headlab.tasks.builtin()"
    if isinstance(tasks, str):
        raise TaskError(f"{usage}, not the string {tasks!r} (for built-in tasks by name: builtin({tasks!r}))")
    if isinstance(tasks, Mapping):
        for key, t in tasks.items():
            if isinstance(t, Task) and key != t.name:
                raise TaskError(f"tasks[{key!r}] is a task named {t.name!r}: key each task by its own name")
        tasks = list(tasks.values())
    if not isinstance(tasks, Iterable):
        raise TaskError(f"{usage}, not {type(tasks).__name__}")
    tasks = list(tasks)  # once: a generator is read a single time
    bad = [type(t).__name__ for t in tasks if not isinstance(t, Task)]
    if bad:
        raise TaskError(f"{usage}; got {', '.join(sorted(set(bad)))} among them")
    if not tasks:
        raise TaskError("no tasks given: pass headlab.tasks.builtin() or your own Task")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise TaskError(f"task names must be unique, got {names}")
    return tasks


def load_cogqa(path, context: bool = True, report: bool = True) -> OrderedDict[str, Task]:
    """Read the CogQA JSON (list of ``{question, answer, generated: [{subquestion, answer, cognitive_skill}]}``).

    Each subquestion becomes a teacher-forced item of its cognitive function: prompt
    ``"Question: {main}\\nSubquestion: {sub}\\nAnswer:"`` (or without the main question when ``context`` is
    False), target ``" " + gold answer``. CogQA has no counterfactuals, so score it with ``metric="logprob"``
    and zero/mean ablation. Everything not turned into an item is counted in ``.dropped`` and, with
    ``report``, named in one warning: labels outside the eight functions, null or empty subquestions and
    answers, duplicates, and questions without ``generated`` subquestions.
    """
    path = Path(check_path("path", path))
    for name, flag in (("context", context), ("report", report)):
        if not isinstance(flag, bool):
            raise TaskError(f"{name} must be True or False, got {flag!r}")
    if path.is_dir():
        raise TaskError(f"{path} is a folder: pass the path to cogqa_train.json")
    if not path.is_file():
        raise TaskError(f"CogQA file not found: {path} (pass the path to cogqa_train.json)")
    try:
        rows = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path} is not valid JSON ({err.msg})") from None
    if not isinstance(rows, list):
        raise TaskError(f"{path}: expected a JSON list of questions, got a {type(rows).__name__}")
    if len(rows) == 1 and isinstance(rows[0], list):
        raise TaskError(f"{path}: the questions are wrapped in a second list ([[...]]): unwrap them to one list")
    records = {name: [] for name in TASK_NAMES}
    dropped = Counter()
    seen = set()
    for qi, q in enumerate(rows):
        if not isinstance(q, dict):
            raise TaskError(
                f"{path}: question {qi} is a {type(q).__name__}, not an object {{question, answer, generated}}"
            )
        main = q.get("question")
        main = main.strip() if isinstance(main, str) else ""
        generated = q.get("generated")
        if not generated:
            dropped["<question without generated subquestions>"] += 1
            continue
        if not isinstance(generated, list):
            raise TaskError(f"{path}: question {qi} 'generated' is a {type(generated).__name__}, not a list")
        for si, sub in enumerate(generated):
            if not isinstance(sub, dict):
                raise TaskError(
                    f"{path}: question {qi} subquestion {si} is a {type(sub).__name__}, not an object "
                    "{subquestion, answer, cognitive_skill}"
                )
            label = sub.get("cognitive_skill")
            label = label.strip() if isinstance(label, str) else ""
            if label not in records:
                dropped[label or "<no label>"] += 1
                continue
            question, answer = sub.get("subquestion"), sub.get("answer")
            if question is None or answer is None:
                dropped["<null subquestion or answer>"] += 1
                continue
            if isinstance(answer, (int, float)) and not isinstance(answer, bool):
                answer = str(answer)  # a numeric gold answer (Math Calculation): its text
            if not isinstance(question, str) or not isinstance(answer, str):
                dropped["<subquestion or answer not text>"] += 1
                continue
            question, answer = question.strip(), answer.strip()
            if not question or not answer:
                dropped["<empty subquestion or answer>"] += 1
                continue
            prompt = (
                f"Question: {main}\nSubquestion: {question}\nAnswer:" if context else f"Question: {question}\nAnswer:"
            )
            if (prompt, answer) in seen:
                dropped["<duplicate>"] += 1
                continue
            seen.add((prompt, answer))
            records[label].append({"prompt": prompt, "answer": " " + answer})
    if dropped and report:
        summary = ", ".join(f"{label}: {n}" for label, n in dropped.most_common())
        warnings.warn(f"CogQA: dropped {sum(dropped.values())} entries ({summary})", stacklevel=2)
    tasks = OrderedDict()
    for name in TASK_NAMES:
        if records[name]:
            tasks[name] = Task.from_records(name, records[name], source=f"cogqa:{path.name}")
    if not tasks:
        raise TaskError(f"{path}: no CogQA subquestion with one of the eight functions' labels: {list(TASK_NAMES)}")
    tasks.dropped = dropped  # type: ignore[attr-defined]
    return tasks
