"""headlab: map which attention heads of a language model matter for which cognitive task.

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
    "select_heads": "headlab.selection",
    "validate": "headlab.validation",
}

_SUBMODULES = ("compare", "gating", "hooks", "interventions", "metrics", "models", "plot", "probing",
               "replay", "results", "scoring", "selection", "stats", "steering", "tasks", "validation",
               "widgets")

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"headlab.{name}")
    raise AttributeError(f"module 'headlab' has no attribute {name!r}")
