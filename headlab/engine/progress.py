"""Progress of long computations: a tqdm bar by default, or a watcher that follows them and can stop them.

Scorers report through ``bar(total, desc, enabled)`` (``update(n)``, ``close()``) and
``each(iterable, desc, enabled)``. Inside ``watching(callback)`` (per thread: the explorer runs a job in a
worker thread) every step goes to ``callback(desc, done, total)`` instead of a printed bar, and the callback
may raise ``Cancelled`` to stop the computation there — between two forward passes, so within about one
pass's time. What a scorer has saved before (a finished task, a resumable sweep's finished layers) stays.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from tqdm.auto import tqdm

from ..errors import HeadlabError

__all__ = ["Cancelled", "bar", "each", "watching"]

_local = threading.local()


class Cancelled(HeadlabError):
    """Raised inside a computation whose watcher stopped it."""


@contextmanager
def watching(callback, model=None, stop=None):
    """Route this thread's progress to ``callback(desc, done, total)`` (it may raise ``Cancelled``).

    With ``model`` and ``stop`` (a callable → bool), ``stop()`` is also asked before each of the model's
    blocks runs in this thread, and True raises ``Cancelled``: a stop takes effect within one block's time.
    The check is a plain PyTorch pre-hook on the block modules, not on a hook point, so it changes nothing
    the model computes (and ``hooks.hooks_active`` does not see it)."""
    before = getattr(_local, "callback", None)
    _local.callback = callback
    me, handles = threading.get_ident(), []

    def check(module, args):
        if threading.get_ident() == me and stop():
            raise Cancelled("stopped")

    if model is not None and stop is not None:
        handles = [block.register_forward_pre_hook(check) for block in getattr(model, "blocks", ())]
    try:
        yield
    finally:
        _local.callback = before
        for h in handles:
            h.remove()


class Watched:
    """A bar-like object that reports each step to the watcher."""

    def __init__(self, total, desc, callback):
        self.total, self.desc, self.n, self.callback = total, desc, 0, callback
        callback(desc, 0, total)  # a cancel already asked for stops before the first step

    def update(self, n: int = 1) -> None:
        self.n += n
        self.callback(self.desc, self.n, self.total)

    def set_postfix_str(self, text: str) -> None:
        """Show a state beside the counter (tqdm's name for it): a remote job's, for one."""
        self.callback(f"{self.desc} · {text}", self.n, self.total)

    def close(self) -> None:
        pass


def bar(total: int, desc: str, enabled: bool = True):
    """A progress bar of ``total`` steps: the watcher's, else tqdm's (hidden unless ``enabled``)."""
    callback = getattr(_local, "callback", None)
    if callback is not None:
        return Watched(total, desc, callback)
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def each(iterable, desc: str, enabled: bool = True):
    """Iterate with progress: one step per item."""
    items = list(iterable)
    b = bar(len(items), desc, enabled)
    try:
        for item in items:
            yield item
            b.update(1)
    finally:
        b.close()
