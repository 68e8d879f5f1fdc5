"""One base for every error headlab raises on purpose: ``except headlab.HeadlabError`` catches them all.

Each class also keeps the builtin base the same error had before it got a class of its own, so code written
against the builtin keeps working: ``except ValueError`` still catches a bad argument (``InputError``),
``except FileExistsError`` a refused overwrite (``OverwriteError``). The errors of one module (``TaskError``,
``ModelLoadError``, ``EngineError``, ``RequestError``, ``UnsupportedModel``, ``Cancelled``, ``NotYet``) live in
that module and derive from these. Every message is one line that says what to do.
"""

from __future__ import annotations

__all__ = [
    "HeadlabError",
    "InputError",
    "InputTypeError",
    "IsAFolderError",
    "MissingDependencyError",
    "MissingFileError",
    "NotAFolderError",
    "NotFoundError",
    "OutOfRangeError",
    "OverwriteError",
]


class HeadlabError(Exception):
    """Every error headlab raises on purpose."""


class InputError(HeadlabError, ValueError):
    """An argument has a value headlab cannot use (a ValueError)."""


class InputTypeError(HeadlabError, TypeError):
    """An argument is of a type headlab cannot use (a TypeError)."""


class OverwriteError(HeadlabError, FileExistsError):
    """A file is in the way and ``overwrite=True`` was not passed (a FileExistsError)."""


class MissingFileError(HeadlabError, FileNotFoundError):
    """A file to read is not there (a FileNotFoundError)."""


class IsAFolderError(HeadlabError, IsADirectoryError):
    """A path to write a file to is a folder (an IsADirectoryError)."""


class NotAFolderError(HeadlabError, NotADirectoryError):
    """A path to write under has a file where a folder belongs (a NotADirectoryError)."""


class NotFoundError(HeadlabError, KeyError):
    """A name looked up (a task of a score map) is not there (a KeyError)."""


class OutOfRangeError(HeadlabError, IndexError):
    """An index is out of range (an IndexError)."""


class MissingDependencyError(HeadlabError, ImportError):
    """An optional package that a feature needs is not installed (an ImportError)."""
