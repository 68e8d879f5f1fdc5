"""Tasks: named sets of prompt/answer items, with counterfactual pairs for patching.

An item is ``prompt`` → ``answer`` (a continuation, usually starting with a space) and, optionally,
``counterfactual`` → ``counterfactual_answer``: the same template with a minimal change. Resample
ablation and attribution patching need the pair; zero/mean ablation and the ``logprob`` metric do not.

- ``builtin()``: the eight cognitive functions, in the papers' 2 × 4 grid order.
- ``Task.from_records / from_jsonl / from_dataframe``: your own tasks, validated.
- ``load_cogqa(path)``: the Cognitive Mirrors CogQA JSON, read from a path (never bundled).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

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


class TaskError(ValueError):
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
            raise TaskError("a task needs a non-empty name")
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
        """The first ``n`` items (for quick runs)."""
        return Task(self.name, self.items[:n], self.source)

    # --- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_records(cls, name: str, records: Iterable[Mapping], source: str = "custom") -> Task:
        """Build from dicts with ``prompt``, ``answer`` and optional counterfactual fields."""
        items = tuple(_item_from_record(name, i, rec) for i, rec in enumerate(records))
        return cls(name, items, source)

    @classmethod
    def from_jsonl(cls, path, name: str | None = None) -> Task:
        """One JSON object per line; the task is named after the file unless ``name`` is given."""
        path = Path(path)
        if not path.is_file():
            raise TaskError(f"no such task file: {path}")
        records = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise TaskError(f"{path}:{lineno}: not valid JSON ({err.msg}): fix that line") from None
        return cls.from_records(name or path.stem.replace("_", " ").title(), records, source=str(path))

    @classmethod
    def from_dataframe(cls, df, name: str) -> Task:
        """From a pandas DataFrame with columns ``prompt``, ``answer`` (and optional counterfactual columns)."""
        missing = [c for c in ("prompt", "answer") if c not in df.columns]
        if missing:
            raise TaskError(f"task {name!r}: the DataFrame lacks column(s) {missing}: add them")
        cols = [c for c in FIELDS if c in df.columns]
        records = [
            {c: (None if _isna(v) else v) for c, v in zip(cols, row)} for row in df[cols].itertuples(index=False)
        ]
        return cls.from_records(name, records, source="dataframe")


def _isna(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _item_from_record(task: str, i: int, rec: Mapping) -> Item:
    if not isinstance(rec, Mapping):
        raise TaskError(f"task {task!r}: item {i} is a {type(rec).__name__}, not a dict with prompt/answer")
    unknown = set(rec) - set(FIELDS)
    if unknown:
        raise TaskError(f"task {task!r}: item {i} has unknown field(s) {sorted(unknown)}; allowed: {list(FIELDS)}")
    for field in ("prompt", "answer"):
        if not isinstance(rec.get(field), str) or not rec[field].strip():
            raise TaskError(f"task {task!r}: item {i} is missing a non-empty {field!r} string")
    cf, cf_answer = rec.get("counterfactual"), rec.get("counterfactual_answer")
    if (cf is None) != (cf_answer is None):
        raise TaskError(
            f"task {task!r}: item {i} has only one of 'counterfactual'/'counterfactual_answer': give both or neither"
        )
    if cf is not None:
        if not isinstance(cf, str) or not cf.strip() or not isinstance(cf_answer, str) or not cf_answer.strip():
            raise TaskError(f"task {task!r}: item {i} has an empty counterfactual or counterfactual_answer")
        if cf_answer == rec["answer"]:
            raise TaskError(f"task {task!r}: item {i} has counterfactual_answer equal to answer: the pair must differ")
    return Item(rec["prompt"], rec["answer"], cf, cf_answer)


def builtin(names: Iterable[str] | None = None) -> OrderedDict[str, Task]:
    """The eight built-in cognitive tasks (or the named subset), in grid order."""
    names = list(TASK_NAMES if names is None else names)
    unknown = [n for n in names if n not in _FILES]
    if unknown:
        raise TaskError(f"unknown built-in task(s) {unknown}: choose from {list(TASK_NAMES)}")
    data = resources.files("headlab") / "data" / "tasks"
    out = OrderedDict()
    for name in names:
        records = [json.loads(line) for line in (data / _FILES[name]).read_text(encoding="utf-8").splitlines() if line]
        out[name] = Task.from_records(name, records, source="builtin")
    return out


def as_task_list(tasks) -> list[Task]:
    """Accept one Task, a list of Tasks, or a mapping name → Task (e.g. ``builtin()``)."""
    if isinstance(tasks, Task):
        return [tasks]
    if isinstance(tasks, Mapping):
        tasks = list(tasks.values())
    if isinstance(tasks, str) or not all(isinstance(t, Task) for t in tasks):
        raise TaskError("tasks must be a Task, a list of Tasks, or a mapping like headlab.tasks.builtin()")
    tasks = list(tasks)
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
    and zero/mean ablation. Labels outside the eight functions are counted, reported and dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"CogQA file not found: {path} (pass the path to cogqa_train.json)")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TaskError(f"{path} is not valid JSON ({err.msg})") from None
    if not isinstance(rows, list):
        raise TaskError(f"{path}: expected a JSON list of questions")
    records = {name: [] for name in TASK_NAMES}
    dropped = Counter()
    seen = set()
    for q in rows:
        main = str(q.get("question", "")).strip()
        for sub in q.get("generated", []) or []:
            label = str(sub.get("cognitive_skill", "")).strip()
            question, answer = str(sub.get("subquestion", "")).strip(), str(sub.get("answer", "")).strip()
            if label not in records:
                dropped[label or "<no label>"] += 1
                continue
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
        warnings.warn(
            f"CogQA: dropped {sum(dropped.values())} item(s) outside the eight functions ({summary})", stacklevel=2
        )
    tasks = OrderedDict()
    for name in TASK_NAMES:
        if records[name]:
            tasks[name] = Task.from_records(name, records[name], source=f"cogqa:{path.name}")
    tasks.dropped = dropped  # type: ignore[attr-defined]
    return tasks
