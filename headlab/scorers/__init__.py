"""Scoring methods, one module each, behind one interface (``base.Scorer``), found by name in a registry.

``names()`` lists them in display order; ``get(name)`` returns one; ``variants()`` is the explorer's list.
Every module in this package is imported here, so a new method registers itself by being a file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import InputError
from .base import REGISTRY, Job, Scorer, TaskResult, TaskSize, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def names() -> tuple[str, ...]:
    """The registered methods, in display order."""
    return tuple(sorted(REGISTRY, key=lambda n: (REGISTRY[n].order, n)))


def get(name: str) -> Scorer:
    if not isinstance(name, str) or name not in REGISTRY:
        raise InputError(f"unknown method {name!r}: choose from {names()}")
    return REGISTRY[name]


def variants() -> dict[str, tuple[str, dict]]:
    """Every method's variants: "method · variant" → (method, the ``score()`` keywords picking it)."""
    return {f"{n} · {label}": (n, dict(kwargs)) for n in names() for label, kwargs in REGISTRY[n].variants.items()}


__all__ = ["Job", "Scorer", "TaskResult", "TaskSize", "get", "names", "register", "variants"]
