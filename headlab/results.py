"""``HeadScores``: the one result type — a task × layer × head cube of head importance plus its metadata.

Plots, widgets, statistics and the CLI read only this.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import os
import warnings
import zipfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np

from .errors import (
    InputError,
    InputTypeError,
    MissingDependencyError,
    MissingFileError,
    NotFoundError,
    OutOfRangeError,
    OverwriteError,
)
from .files import check_overwrite, output_path, write_file
from .models import ModelInfo
from .tasks import Task

__all__ = [
    "HeadScores",
    "NORMALIZATIONS",
    "check_k",
    "check_meta",
    "check_model",
    "check_threshold",
    "refuse_tasks_as_scores",
]

NORMALIZATIONS = ("none", "share", "fraction", "zscore", "max")
SCHEMA = 3  # of saved HeadScores files (1: before the schema field; 2: before ``verified``)


def check_k(name: str, k, n: int | None = None) -> int:
    """``k`` as an int ≥ 1 (and ≤ ``n`` when given): a count of heads. One-line ValueError naming ``name``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InputError(f"{name} must be a whole number, got {k!r}")
    if k < 1 or (n is not None and k > n):
        upto = f" from 1 to {n} (heads per task)" if n is not None else " ≥ 1"
        raise InputError(f"{name} must be{upto}, got {k}")
    return int(k)


def refuse_tasks_as_scores(fn: str, scores) -> None:
    """A one-line TypeError when ``scores`` holds tasks: ``score(model, tasks)`` puts tasks second, ``fn`` puts
    them third, and the swap is easy to make."""
    values = scores.values() if isinstance(scores, dict) else scores if isinstance(scores, (list, tuple)) else [scores]
    if any(isinstance(v, Task) for v in values):
        raise InputTypeError(
            f"{fn}() got tasks as scores=: the order is {fn}(model, scores, tasks), the scores from "
            "headlab.score(model, tasks)"
        )


def check_model(fn: str, scores: HeadScores, model, cross_model: bool = False, label: str = "scores") -> None:
    """Refuse a map of another model: another shape always; another name or fingerprint (weights, config,
    tokenizer: ``cache.model_fingerprint``, recorded by ``score()``) unless ``cross_model=True`` (a fine-tune's
    map on its base, on purpose), which says so in one warning. Equal fingerprints pass under any name (a moved
    folder); a map without one (saved by an older headlab, or built by hand) is checked by its name."""
    from .cache import model_fingerprint
    from .models import describe

    if not isinstance(cross_model, bool):
        raise InputError(f"cross_model must be True or False, got {cross_model!r}")
    info, of = describe(model), scores.model
    if (info.n_layers, info.n_heads) != (of.n_layers, of.n_heads):
        raise InputError(
            f"{fn}: {label} are of a {of.n_layers} × {of.n_heads} model ({of.name}) but the model is "
            f"{info.n_layers} × {info.n_heads} ({info.name}): use the map computed on this model"
        )
    if of.fingerprint is not None:
        if of.fingerprint == model_fingerprint(model):
            return
        other = f"of {of.name!r}, the model is {info.name!r}" if of.name != info.name else f"of another {of.name!r}"
        why = f"{other} (other weights, config or tokenizer" + (
            f"; {of.dtype} then, {info.dtype} now)" if of.dtype != info.dtype else ")"
        )
    elif of.name != info.name:
        why = f"of {of.name!r}, the model is {info.name!r}"
    else:
        return
    if not cross_model:
        raise InputError(
            f"{fn}: {label} are {why}: score this model (headlab.score), or pass cross_model=True to use another "
            "model's map on purpose"
        )
    warnings.warn(f"{fn}: {label} are {why}: used on purpose (cross_model=True)", stacklevel=3)


def check_threshold(name: str, value) -> float:
    """``value`` as a finite float (not a string, a bool, NaN or ±inf); one-line ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def json_params(params: dict, where: str = "params") -> dict:
    """``params`` as plain JSON for a saved file: numpy numbers become Python numbers, arrays and tuples lists;
    anything JSON cannot hold (an object, a set, a key that is not a string) is one TypeError naming its key."""

    def plain(value, at: str):
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return plain(value.tolist(), at)
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(v, f"{at}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise InputTypeError(
                    f"{at} has the key {bad[0]!r} ({type(bad[0]).__name__}): a saved file keeps string keys only, "
                    "convert it with str()"
                )
            return {k: plain(v, f"{at}[{k!r}]") for k, v in value.items()}
        raise InputTypeError(
            f"{at} is {type(value).__name__} {value!r}, which a saved file cannot hold: use numbers, strings, "
            "lists or dicts"
        )

    if not isinstance(params, dict):
        raise InputTypeError(f"{where} must be a dict, got {type(params).__name__}")
    return plain(params, where)


META_FIELDS = {"tasks": list, "model": dict, "method": str, "params": dict}


def check_meta(path: Path, meta) -> dict:
    """The metadata of a saved scores file, checked field by field: one ValueError naming the file and the field
    where one is missing or of the wrong kind (the file is damaged, or was not written by headlab)."""

    def bad(field_: str, why: str) -> InputError:
        return InputError(f"{path}: metadata field {field_!r} {why}: the file is damaged or not headlab's")

    if not isinstance(meta, dict):
        raise InputError(f"{path}: its metadata is a {type(meta).__name__}, not a dict: the file is not headlab's")
    schema = meta.get("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise bad("schema", f"is {schema!r} ({type(schema).__name__}), not a whole number")
    if schema > SCHEMA:
        raise InputError(
            f"{path} was saved with scores schema {schema}, newer than this headlab's {SCHEMA}: upgrade headlab to "
            "read it"
        )
    for name, kind in META_FIELDS.items():
        if name not in meta:
            raise bad(name, "is missing")
        if not isinstance(meta[name], kind):
            raise bad(name, f"is a {type(meta[name]).__name__}, not a {kind.__name__}")
    for name in ("tasks", "notes"):
        value = meta.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(name, f"is {value!r}, not a list of strings")
    known = {f.name: f for f in fields(ModelInfo)}
    model = meta["model"]
    unknown = sorted(set(model) - set(known))
    missing = [n for n, f in known.items() if f.default is MISSING and n not in model]
    if unknown or missing:
        raise bad("model", f"has unknown key(s) {unknown}" if unknown else f"lacks {missing}")
    kinds = {"int": int, "str": str, "str | None": (str, type(None))}  # ModelInfo's annotations
    for name, value in model.items():
        kind = kinds.get(known[name].type, object)
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise bad(f"model.{name}", f"is {value!r} ({type(value).__name__}), not {known[name].type}")
    return meta


@dataclass
class HeadScores:
    """Signed head scores: ``values[t, l, h]`` = clean metric − metric with head (l, h) ablated, averaged
    over task t's items (positive = the head helps the task).

    values       (n_tasks, n_layers, n_heads) float
    per_example  (n_tasks, max_examples, n_layers, n_heads), NaN past a task's ``n_examples``
    baseline     (n_tasks,) clean metric, averaged over the items scored
    verified     (n_tasks, n_layers, n_heads) bool: heads holding exact values, the rest estimates
                 (``method="verified"``); None for every other method
    """

    values: np.ndarray
    tasks: list[str]
    model: ModelInfo
    method: str
    params: dict
    n_examples: np.ndarray
    baseline: np.ndarray
    per_example: np.ndarray
    notes: list[str] = field(default_factory=list)
    verified: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.model, ModelInfo):
            raise InputTypeError(
                f"model must be a ModelInfo (headlab.models.describe(model)), not {type(self.model).__name__}"
            )
        if isinstance(self.tasks, str):
            raise InputTypeError(f"tasks must be a list of task names, not the string {self.tasks!r}")
        self.tasks = list(self.tasks)
        bad = [t for t in self.tasks if not isinstance(t, str) or not t]
        if bad:
            raise InputTypeError(f"task names must be non-empty strings, got {bad!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise InputError(f"task names must be unique, got {self.tasks}")
        if not isinstance(self.method, str) or not self.method:
            raise InputTypeError(f"method must be the method's name, a non-empty string, not {self.method!r}")
        if not isinstance(self.params, dict):
            kind = type(self.params).__name__
            raise InputTypeError(f"params must be a dict of how the map was computed ({{}} when unknown), not {kind}")
        arrays = {}
        for name, dtype in (("values", np.float64), ("n_examples", np.int64), ("baseline", np.float64)):
            try:
                arrays[name] = np.asarray(getattr(self, name), dtype=dtype)
            except (TypeError, ValueError) as err:
                raise InputError(f"{name} must be numeric: {str(err).splitlines()[0]}") from None
        self.values, self.n_examples, self.baseline = arrays["values"], arrays["n_examples"], arrays["baseline"]
        self.per_example = np.asarray(self.per_example, dtype=np.float32)
        T, L, H = expected = (len(self.tasks), self.model.n_layers, self.model.n_heads)
        if self.values.shape != expected:
            raise InputError(f"values has shape {self.values.shape}, expected {expected} (tasks, layers, heads)")
        if np.isinf(self.values).any():
            t, l, h = np.argwhere(np.isinf(self.values))[0]
            raise InputError(
                f"values hold ±inf (first: task {self.tasks[t]!r} L{l}.H{h}): a head score must be finite "
                "(NaN marks a missing one)"
            )
        for name in ("n_examples", "baseline"):
            if getattr(self, name).shape != (T,):
                raise InputError(f"{name} has shape {getattr(self, name).shape}, expected ({T},): one per task")
        if self.per_example.ndim != 4 or self.per_example.shape[0] != T or self.per_example.shape[2:] != (L, H):
            raise InputError(
                f"per_example has shape {self.per_example.shape}, expected ({T}, items, {L}, {H}) "
                "(tasks, items, layers, heads)"
            )
        if self.verified is not None:
            self.verified = np.asarray(self.verified)
            if self.verified.dtype != bool or self.verified.shape != expected:
                raise InputError(
                    f"verified must be a bool mask of shape {expected} (tasks, layers, heads) or None, got "
                    f"{self.verified.dtype} {self.verified.shape}"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape

    def _index(self, task) -> int:
        if isinstance(task, bool):
            raise InputTypeError(f"a task is its name or its index, not {task!r}")
        if isinstance(task, numbers.Integral):
            if not -len(self.tasks) <= task < len(self.tasks):
                raise OutOfRangeError(
                    f"task index {task} is out of range: these scores hold {len(self.tasks)} task(s), "
                    f"0–{len(self.tasks) - 1} ({self.tasks})"
                )
            return int(task) % len(self.tasks)
        if not isinstance(task, str):
            raise InputTypeError(f"a task is its name or its index, not {type(task).__name__} {task!r}")
        if task not in self.tasks:
            raise NotFoundError(f"no task {task!r} in these scores; tasks: {self.tasks}")
        return self.tasks.index(task)

    def __getitem__(self, task) -> np.ndarray:
        """One task's (n_layers, n_heads) map."""
        return self.values[self._index(task)]

    def select(self, tasks) -> HeadScores:
        """The scores of a subset of tasks (names or indices; one name alone too), in the order given. A params entry
        keyed by task (``per_task``, ``task_hashes``, a probe's ``class_accuracy``) keeps only the tasks kept."""
        tasks = [tasks] if isinstance(tasks, (str, numbers.Integral)) else list(tasks)
        if not tasks:
            raise InputError(f"select() needs at least one task; these scores have {self.tasks}")
        idx = [self._index(t) for t in tasks]
        if len(set(idx)) != len(idx):
            raise InputError(f"select() got a task twice: {tasks}")
        kept = [self.tasks[i] for i in idx]
        by_task = lambda v: isinstance(v, dict) and v and set(v) <= set(self.tasks)  # noqa: E731
        params = {k: {t: v[t] for t in kept if t in v} if by_task(v) else v for k, v in self.params.items()}
        return HeadScores(
            self.values[idx],
            kept,
            self.model,
            self.method,
            params,
            self.n_examples[idx],
            self.baseline[idx],
            self.per_example[idx],
            list(self.notes),
            None if self.verified is None else self.verified[idx],
        )

    def per_run(self) -> list[HeadScores]:
        """One HeadScores per row of ``per_example`` (for gating: one per seed) — e.g. the runs for
        ``stats.always_any``. Needs the same number of rows in every task."""
        if len(set(self.n_examples.tolist())) != 1:
            raise InputError(f"tasks have different numbers of rows {self.n_examples.tolist()}: select one task first")
        rows = self.per_example[:, : int(self.n_examples[0])].astype(np.float64)
        return [
            HeadScores(
                rows[:, r],
                self.tasks,
                self.model,
                self.method,
                {**self.params, "run": r},
                np.ones(len(self.tasks), dtype=np.int64),
                self.baseline,
                rows[:, r : r + 1],
                verified=self.verified,
            )
            for r in range(rows.shape[1])
        ]

    def normalized(self, normalize: str = "share") -> np.ndarray:
        """(n_tasks, n_layers, n_heads): "share" (the default, as in the plots) s/Σ|s| per task (signed: helpers
        > 0, harmers < 0), "fraction" |s|/Σ|s| (its magnitude: the papers' 0–0.004 scale), "zscore"
        (s − mean)/std per task, "max" s / max|s| per task, "none" the raw values. A NaN (a missing head) stays
        NaN and is left out of its task's sums: the other heads keep their values."""
        v = self.values
        axes = (1, 2)
        if not isinstance(normalize, str) or normalize not in NORMALIZATIONS:
            raise InputError(f"unknown normalization {normalize!r}: choose from {NORMALIZATIONS}")
        if normalize == "none":
            return v.copy()
        a, missing = np.abs(v), np.isnan(v)
        if not missing.any():  # the common case, and the exact arithmetic of before
            if normalize in ("share", "fraction"):
                return (v if normalize == "share" else a) / np.maximum(a.sum(axes, keepdims=True), 1e-30)
            if normalize == "zscore":
                return (v - v.mean(axes, keepdims=True)) / np.maximum(v.std(axes, keepdims=True), 1e-30)
            return v / np.maximum(a.max(axes, keepdims=True), 1e-30)
        some = ~missing.all(axes, keepdims=True)  # a task with no finite head stays all NaN, without warnings
        fill = lambda x, value: np.where(missing, value, x)  # noqa: E731
        if normalize in ("share", "fraction"):
            out = (v if normalize == "share" else a) / np.maximum(fill(a, 0.0).sum(axes, keepdims=True), 1e-30)
        elif normalize == "zscore":
            n = np.maximum((~missing).sum(axes, keepdims=True), 1)
            mean = fill(v, 0.0).sum(axes, keepdims=True) / n
            std = np.sqrt(fill((v - mean) ** 2, 0.0).sum(axes, keepdims=True) / n)
            out = (v - mean) / np.maximum(std, 1e-30)
        else:
            out = v / np.maximum(fill(a, 0.0).max(axes, keepdims=True), 1e-30)
        return np.where(some, out, np.nan)

    def top(self, task, k: int = 10) -> list[tuple[int, int, float]]:
        """The k highest-scoring heads of ``task`` as (layer, head, value), best first (signed: helpers); every
        head when k exceeds their number. Missing (NaN) heads come last."""
        check_k("k", k)
        m = self[task]
        order = np.argsort(-m, axis=None, kind="stable")[:k]
        return [(int(i // m.shape[1]), int(i % m.shape[1]), float(m.flat[i])) for i in order]

    def rank(self, task) -> np.ndarray:
        """(n_layers, n_heads) int rank of each head within ``task`` (1 = highest score) among its scored heads;
        0 for a missing (NaN) head, which has no rank."""
        m = self[task]
        scored = np.isfinite(m).ravel()
        order = np.argsort(-m, axis=None, kind="stable")  # NaNs sort last
        ranks = np.zeros(m.size, dtype=np.int64)
        ranks[order[: scored.sum()]] = np.arange(1, scored.sum() + 1)
        return ranks.reshape(m.shape)

    def top_table(self, k: int = 5, decimals: int = 4) -> str:
        """A plain-text table of each task's top-k heads (deterministic: used in notebooks and the CLI). A
        screened-then-verified map adds a column saying which values are exact and which estimates. Missing (NaN)
        heads are never listed: a task with fewer than k scored heads says how many it has."""
        check_k("k", k)
        if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral) or not 0 <= decimals <= 16:
            raise InputError(f"decimals must be an int from 0 to 16, got {decimals!r}")
        marked = self.verified is not None
        lines = [f"{'task':<24} {'rank':>4} {'layer':>5} {'head':>4} {'score':>10}" + ("  value" if marked else "")]
        for t, task in enumerate(self.tasks):
            top = [(l, h, v) for l, h, v in self.top(task, k) if not math.isnan(v)]
            for r, (l, h, v) in enumerate(top, 1):
                line = f"{task if r == 1 else '':<24} {r:>4} {l:>5} {h:>4} {v:>10.{decimals}f}"
                if marked:
                    line += "  exact" if self.verified[t, l, h] else "  estimate"
                lines.append(line)
            scored, size = int(np.isfinite(self.values[t]).sum()), self.values[t].size
            if scored < min(k, size):
                what = (
                    f"only {scored} scored heads: the other {size - scored}"
                    if scored
                    else f"no scored heads: all {size}"
                )
                lines.append(f"{'' if top else task:<24} ({what} are NaN)")
        return "\n".join(lines)

    def disagreements(self):
        """For ``method="verified"``: the verified heads where the screen was wrong — a sign flip, or a rank
        moved by more than 10 — as a DataFrame (task, layer, head, attribution, attribution_rank, exact,
        exact_rank, why), ranks 1 = highest; empty for other methods."""
        import pandas as pd

        columns = ["task", "layer", "head", "attribution", "attribution_rank", "exact", "exact_rank", "why"]
        rows = [dict(task=task, **row) for task, found in self.params.get("disagreements", {}).items() for row in found]
        return pd.DataFrame(rows, columns=columns)

    def to_dataframe(self):
        """Long format: one row per (task, layer, head) with value, fraction and rank, and for a verified map
        ``verified`` (True where the value is exact ablation's)."""
        import pandas as pd

        frac = self.normalized("fraction")
        rows = []
        for t, task in enumerate(self.tasks):
            ranks = self.rank(task)
            for l in range(self.model.n_layers):
                for h in range(self.model.n_heads):
                    rows.append((task, l, h, self.values[t, l, h], frac[t, l, h], int(ranks[l, h])))
        table = pd.DataFrame(rows, columns=["task", "layer", "head", "value", "fraction", "rank"])
        if self.verified is not None:
            table["verified"] = self.verified.reshape(-1)
        return table

    def to_xarray(self):
        """An ``xarray.DataArray`` with dims (task, layer, head) and the metadata in ``attrs``; a verified map
        carries its mask as the coordinate ``verified`` (task, layer, head)."""
        try:
            import xarray as xr
        except ImportError:
            raise MissingDependencyError("to_xarray() needs xarray: pip install xarray") from None
        dims = ("task", "layer", "head")
        coords = {"task": self.tasks, "layer": np.arange(self.model.n_layers), "head": np.arange(self.model.n_heads)}
        if self.verified is not None:
            coords["verified"] = (dims, self.verified)
        return xr.DataArray(
            self.values,
            dims=dims,
            coords=coords,
            name="head_score",
            attrs={"method": self.method, "model": self.model.name, "params": json.dumps(json_params(self.params))},
        )

    def _meta(self) -> dict:
        return {
            "tasks": self.tasks,
            "model": self.model.to_dict(),
            "method": self.method,
            "params": self.params,
            "notes": self.notes,
        }

    def save(self, path, overwrite: bool = False) -> Path:
        """Write to ``path`` atomically (".npz" is appended unless the name ends with it: ``run.v1`` →
        ``run.v1.npz``; ``~`` is the home folder); ``HeadScores.load`` round-trips exactly (numpy numbers and
        arrays in ``params`` come back as plain numbers and lists). An existing file is kept unless
        ``overwrite=True``, but saving the same scores again is not an error: nothing would be lost. The path
        rules are ``headlab.files``'s, shared by every writer."""
        what = "HeadScores.save()"
        overwrite = check_overwrite(overwrite, what)
        path = output_path(path, what=what, suffixes=(".npz",), append_suffix=".npz", overwrite=True)
        buf = io.BytesIO()
        np.savez(
            buf,
            values=self.values,
            n_examples=self.n_examples,
            baseline=self.baseline,
            per_example=self.per_example,
            meta=np.array(json.dumps({"schema": SCHEMA, **self._meta(), "params": json_params(self.params)})),
            **({} if self.verified is None else {"verified": self.verified}),
        )
        data = buf.getvalue()
        if not overwrite and os.path.lexists(path):
            if path.is_file() and path.read_bytes() == data:
                return path  # the same scores again: nothing to lose, nothing written
            raise OverwriteError(f"{path} exists and holds other scores: pass overwrite=True, or another name")
        return write_file(path, data, overwrite=overwrite, what=what)

    @classmethod
    def load(cls, path) -> HeadScores:
        """Read a file written by ``save``; one line naming the file (and the field) when it is missing,
        truncated, foreign, holds pickled objects, was written by a newer schema, or its metadata is malformed."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise MissingFileError(f"no saved scores at {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                if "meta" not in f.files:
                    raise InputError(f"{path} is an .npz file but not saved HeadScores (no 'meta' entry)")
                meta = check_meta(path, json.loads(str(f["meta"])))
                arrays = [f[k] for k in ("values", "n_examples", "baseline", "per_example")]
                verified = f["verified"] if "verified" in f.files else None  # schema ≤ 2: none
        except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as err:
            raise InputError(
                f"{path} is not a readable headlab scores file (truncated or another format: "
                f"{str(err).splitlines()[0] if str(err) else type(err).__name__})"
            ) from None
        except ValueError as err:
            if "pickle" in str(err) or "Object arrays" in str(err):
                raise InputError(
                    f"{path} holds pickled objects: headlab never writes them and will not load "
                    "them (they can run code)"
                ) from None
            raise
        values, n_examples, baseline, per_example = arrays
        try:
            return cls(
                values,
                meta["tasks"],
                ModelInfo(**meta["model"]),
                meta["method"],
                meta["params"],
                n_examples,
                baseline,
                per_example,
                meta.get("notes", []),
                verified,
            )
        except (TypeError, ValueError) as err:
            raise InputError(f"{path} holds inconsistent scores: {str(err).splitlines()[0]}") from None

    def __repr__(self) -> str:
        detail = {
            "probe": f"probe={self.params.get('probe')}, pool={self.params.get('pool')}",
            "gating": f"seeds={self.params.get('seeds')}",
        }.get(self.method, f"ablation={self.params.get('ablation')}, metric={self.params.get('metric')}")
        return (
            f"HeadScores({self.method}, model={self.model.name}, tasks={len(self.tasks)}, "
            f"layers={self.model.n_layers}, heads={self.model.n_heads}, {detail})"
        )
