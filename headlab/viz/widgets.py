"""``headlab.widgets``: the notebook explorer. ``explorer(...)`` builds it; the parts live in
``headlab.viz.explorer`` (state, controls, view, jobs, menus, details). ``METHODS``: every entry of its Method
menu, "method · variant" → (method, ``score()`` keywords)."""

from .explorer import Explorer, HeadDetails, explorer
from .explorer.menus import METHODS

__all__ = ["METHODS", "Explorer", "HeadDetails", "explorer"]
