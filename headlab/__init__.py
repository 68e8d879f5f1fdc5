"""headlab: map which attention heads of a language model matter for which cognitive task.

The pipeline, one room each::

    models      load_model, describe: a TransformerBridge and its ModelInfo
    tasks       Task, builtin, load_cogqa: prompts, answers, counterfactuals
    engine/     running the model with heads changed: hooks, forward, replay, packing
    metrics     encode, metric_at, evaluate
    scorers/    one file per method behind one interface (ablation, attribution, probe, gating)
    scoring     score(): tasks → cache → scorer → HeadScores
    cache       fingerprints, keys, atomic reads and writes, partial sweeps
    results     HeadScores: the task × layer × head cube
    analysis/   selection, stats, compare, validation, steering, interventions
    viz/        plot, widgets, curves
    workshop    the checks of notebooks/03_workshop (hints for wrong answers)
    cli         python -m headlab

The top-level names load lazily, so ``import headlab`` is fast and loads no torch model.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_model": "headlab.models",
    "describe": "headlab.models",
    "ModelInfo": "headlab.models",
    "tiny": "headlab.models",
    "Task": "headlab.tasks",
    "builtin": "headlab.tasks",
    "load_cogqa": "headlab.tasks",
    "score": "headlab.scoring",
    "HeadScores": "headlab.results",
    "select_heads": "headlab.analysis.selection",
    "validate": "headlab.analysis.validation",
    "faithfulness": "headlab.analysis.validation",
    "faithfulness_plot": "headlab.viz.curves",
    "faithfulness_grid": "headlab.viz.curves",
}

_SUBMODULES = {
    "cache": "headlab.cache",
    "cli": "headlab.cli",
    "metrics": "headlab.metrics",
    "models": "headlab.models",
    "results": "headlab.results",
    "scorers": "headlab.scorers",
    "scoring": "headlab.scoring",
    "tasks": "headlab.tasks",
    "hooks": "headlab.engine.hooks",
    "packing": "headlab.engine.packing",
    "replay": "headlab.engine.replay",
    "gating": "headlab.scorers.gating",
    "probing": "headlab.scorers.probe",
    "compare": "headlab.analysis.compare",
    "interventions": "headlab.analysis.interventions",
    "selection": "headlab.analysis.selection",
    "stats": "headlab.analysis.stats",
    "steering": "headlab.analysis.steering",
    "validation": "headlab.analysis.validation",
    "plot": "headlab.viz.plot",
    "curves": "headlab.viz.curves",
    "widgets": "headlab.viz.widgets",
    "workshop": "headlab.workshop",
}

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    raise AttributeError(f"module 'headlab' has no attribute {name!r}")
