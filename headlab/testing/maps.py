"""Hand-built maps for tests: one ``HeadScores`` builder with keyword arguments, so that no test spells out the
constructor's eight positional fields.

``head_scores(values)`` is a map of the (task, layer, head) array ``values`` with one item per task;
``head_scores(per_example=items)`` one of the (task, item, layer, head) array ``items`` (``values`` its item
mean, ``n_examples`` its item count unless given). Everything else has a plain default: tasks ``T0, T1, ...``,
the model ``ModelInfo(model, L, H, H, 8, 32, 100)`` (or the ``ModelInfo`` given), method "attribution", params
{"ablation": "resample", "metric": "logit_diff"}, baselines 0.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..models import ModelInfo
from ..results import HeadScores

__all__ = ["head_scores"]

DEFAULT_PARAMS = {"ablation": "resample", "metric": "logit_diff"}


def head_scores(
    values=None,
    *,
    per_example=None,
    tasks=None,
    model: str | ModelInfo = "hand",
    method: str = "attribution",
    params: dict | None = None,
    n_examples=None,
    baseline=None,
    verified=None,
    notes=None,
) -> HeadScores:
    """A ``HeadScores`` from ``values`` (T, L, H) or ``per_example`` (T, n, L, H) (see the module docstring);
    ``params`` replaces the default params whole ({} for none)."""
    if per_example is None:
        if values is None:
            raise InputError("head_scores() needs values (task, layer, head) or per_example (task, item, layer, head)")
        values = np.asarray(values, dtype=np.float64)
        per_example = values[:, None].astype(np.float32)
    else:
        per_example = np.asarray(per_example, dtype=np.float32)
        if values is None:
            values = np.nanmean(per_example.astype(np.float64), axis=1)
    values = np.asarray(values, dtype=np.float64)
    T, L, H = values.shape
    info = model if isinstance(model, ModelInfo) else ModelInfo(model, L, H, H, 8, 32, 100)
    return HeadScores(
        values=values,
        tasks=list(tasks) if tasks is not None else [f"T{t}" for t in range(T)],
        model=info,
        method=method,
        params=dict(DEFAULT_PARAMS if params is None else params),
        n_examples=[per_example.shape[1]] * T if n_examples is None else n_examples,
        baseline=np.zeros(T) if baseline is None else baseline,
        per_example=per_example,
        notes=list(notes or []),
        verified=verified,
    )
