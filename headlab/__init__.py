"""headlab: map which attention heads of a language model matter for which cognitive task.

What you type in a notebook::

    import headlab

    model = headlab.load_model()  # the embedded SmolLM2-135M-Instruct, offline
    tasks = headlab.builtin()  # the eight built-in tasks
    scores = headlab.score(model, tasks, method="attribution")  # a HeadScores: task × layer × head
    headlab.heatmap_grid(scores)  # one heatmap per task
    heads = headlab.select_heads(scores, "Math Calculation")  # its cognitive heads (the elbow rule)
    headlab.validate(model, scores, tasks)  # mask them against random heads: a Validation
    headlab.explorer(scores=scores)  # the live explorer in JupyterLab

``load_model(engine="bridge" | "nnsight" | "ndif")`` picks how the model runs: the TransformerLens bridge (the
default), nnsight locally, or nnsight on NDIF's remote GPUs. Every error headlab raises on purpose is a
``HeadlabError``.

These are all the top-level names (``__all__``); everything else is reached by its module path
(``headlab.viz.plot``, ``headlab.analysis.compare``, ``headlab.models.describe``, …) and the test helpers by
``headlab.testing``. docs/concepts.md maps the modules. The names load lazily: ``import headlab`` is fast and
loads no torch.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_model": "headlab.models",
    "Task": "headlab.tasks",
    "builtin": "headlab.tasks",
    "load_cogqa": "headlab.tasks",
    "score": "headlab.scoring",
    "HeadScores": "headlab.results",
    "select_heads": "headlab.analysis.selection",
    "validate": "headlab.analysis.validation",
    "faithfulness": "headlab.analysis.validation",
    "heatmap_grid": "headlab.viz.plot",
    "explorer": "headlab.viz.explorer",
    "HeadlabError": "headlab.errors",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'headlab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
