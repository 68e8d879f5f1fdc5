"""What the Model, Method and Compare menus offer, and under which label a map is shown.

- ``method_choices``: the Method menu, from every registered scorer's ``variants`` ("method · variant" →
  (method, ``score()`` keywords)), read when an explorer is built: a scorer registered later is in the next one.
- ``entry_of(scores)``: the entry that computed a map (all options and the metric match), else an entry of its
  own naming what differs — a map is never shown under another computation's label.
- ``engine_of(entry)`` and ``model_label``: where a model runs ("bridge", "nnsight", "ndif"); a remote (NDIF)
  model is marked "· NDIF (remote)" in the menu, and ``runs_on`` keeps the methods its engine cannot run out of
  the Method menu.
"""

from __future__ import annotations

import json

from ... import scorers
from ...errors import InputError
from ...results import HeadScores, check_model

__all__ = [
    "check_fit",
    "check_tasks_match",
    "compare_options",
    "engine_of",
    "entry_of",
    "method_choices",
    "model_label",
    "plain",
    "runs_on",
    "shape_of",
]

NO_COMPARE = "— none —"
ENGINE_MARKS = {"bridge": "", "nnsight": " · nnsight", "ndif": " · NDIF (remote)"}


def method_choices(methods) -> dict[str, tuple[str, dict]]:
    """The Method menu: ``methods`` (labels of ``scorers.variants()`` or (method, variant) pairs; None: every
    one)."""
    every = scorers.variants()
    if methods is None:
        return every
    if isinstance(methods, str):
        methods = [methods]
    try:
        methods = list(methods)
    except TypeError:
        raise InputError(f"methods= takes a list of method labels, not {type(methods).__name__}") from None
    choices = {}
    for m in methods:
        pair = isinstance(m, (tuple, list)) and len(m) == 2
        label = m if isinstance(m, str) else f"{m[0]} · {m[1]}" if pair else None
        if label not in every:
            raise InputError(f"unknown method {m!r}: choose from {list(every)}")
        choices[label] = every[label]
    if not choices:
        raise InputError("explorer() needs at least one method")
    return choices


def plain(value):
    """``value`` as its saved params hold it (tuples as lists), to compare an option with its default."""
    return json.loads(json.dumps(value, default=str))


def entry_of(scores: HeadScores) -> tuple[str, tuple[str, dict]]:
    """The menu entry (label, (method, ``score()`` keywords)) of how ``scores`` were computed: the
    ``scorers.variants()`` entry whose keywords, the method's default options and the default metric all match
    its ``params``, else an entry of its own labelled by what differs (``attribution · resample · steps=8``; a
    hand-built map whose params do not say its ablation: ``ablation · ablation ?``)."""
    if scores.method not in scorers.names():
        return f"{scores.method} · ?", (scores.method, {})
    scorer = scorers.get(scores.method)
    defaults = {**scorer.options, **({"metric": "logit_diff"} if scorer.uses_metric else {})}

    def given(key):  # a map saved before an option existed was computed with its default
        return plain(scores.params.get(key, defaults.get(key)))

    for label, (method, kwargs) in scorers.variants().items():
        if method == scores.method and all(given(k) == plain(v) for k, v in {**defaults, **kwargs}.items()):
            return label, (method, kwargs)
    kwargs = {"ablation": scores.params.get("ablation")} if scorer.uses_ablation else {}
    kwargs.update({k: given(k) for k in defaults if given(k) != plain(defaults[k])})
    what = " · ".join(
        (v if isinstance(v, str) else "ablation ?" if v is None else f"ablation={v}") if k == "ablation" else f"{k}={v}"
        for k, v in kwargs.items()
    )
    return f"{scores.method} · {what or '?'}", (scores.method, kwargs)


def engine_of(model) -> str:
    """Where a model entry runs: its ``engine`` ("bridge", "nnsight", "ndif"), "bridge" for a plain bridge, a
    name or a loader not called yet."""
    engine = getattr(model, "engine", "bridge")
    return engine if isinstance(engine, str) and engine in ENGINE_MARKS else "bridge"


def model_label(name: str, engine: str) -> str:
    """The Model menu's entry: the name, and the engine where it is not the bridge ("llama-70b · NDIF (remote)")."""
    return name + ENGINE_MARKS.get(engine, f" · {engine}")


def runs_on(method: tuple[str, dict], engine: str) -> bool:
    """Whether a method entry's scorer runs on ``engine`` (``Scorer.engines``)."""
    kind = method[0]
    return kind not in scorers.names() or engine in scorers.get(kind).engines


def shape_of(model):
    """(n_layers, n_heads) of a loaded model, or None for something that does not say (a stand-in)."""
    cfg = getattr(model, "cfg", None)
    try:
        return int(cfg.n_layers), int(cfg.n_heads)
    except (AttributeError, TypeError, ValueError):
        return None


def check_fit(scores: HeadScores, model, name: str, cross_model: bool = False) -> None:
    """Refuse scores of another model than model ``name``'s (``results.check_model``: shape, name, fingerprint);
    ``cross_model=True`` shows them with one warning."""
    if shape_of(model) is not None:
        check_model(f"explorer(scores=) on model {name!r}", scores, model, cross_model)


def check_tasks_match(scores: HeadScores, tasks: dict) -> None:
    """Refuse Task objects whose items differ from those the scores were computed on (same names, other
    items), where the scores record them (``params["task_hashes"]``)."""
    recorded = scores.params.get("task_hashes") if isinstance(scores.params, dict) else None
    if not isinstance(recorded, dict):
        return
    other = [name for name, t in tasks.items() if name in recorded and recorded[name] != t.content_hash()]
    if other:
        raise InputError(
            f"scores= were computed on other items than tasks= gives for {other}: pass the Task objects the scores "
            "came from"
        )


def compare_options(models, methods, a: tuple[str, str]) -> list[tuple[str, tuple]]:
    """The Compare menu for map A = ``a``: none, every other method on A's model, A's method on every other
    model, as (label, () or (model, method))."""
    model, method = a
    options = [(NO_COMPARE, ())]
    options += [(f"method: {m}", (model, m)) for m in methods if m != method]
    options += [(f"model: {m}", (m, method)) for m in models if m != model]
    return options
