"""One error base: every error headlab raises on purpose is a ``HeadlabError``, and keeps the builtin base it had
before (``except ValueError`` still catches a bad argument). Read from the source (ast) for the raises."""

import ast
import builtins
from pathlib import Path

import pytest

from headlab import errors
from headlab.engine.forward import UnsupportedModel
from headlab.engine.ndif import RequestError
from headlab.engine.nnsight_engine import EngineError
from headlab.engine.progress import Cancelled
from headlab.models import ModelLoadError
from headlab.tasks import TaskError
from headlab.workshop import NotYet

ROOT = Path(__file__).resolve().parents[2] / "headlab"

BUILTIN_ERRORS = {
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
}

# (module, builtin class): the raises that are a protocol, not an error of headlab's own.
ALLOWED = {
    ("headlab", "AttributeError"),  # the module __getattr__ of the lazy top level
    ("headlab.cli", "SystemExit"),  # the command line exits with its message, as argparse does
    ("headlab.scorers.base", "NotImplementedError"),  # the abstract methods of Scorer
}

# class → the builtin base it keeps.
KEPT_BASE = {
    errors.InputError: ValueError,
    errors.InputTypeError: TypeError,
    errors.OverwriteError: FileExistsError,
    errors.MissingFileError: FileNotFoundError,
    errors.IsAFolderError: IsADirectoryError,
    errors.NotAFolderError: NotADirectoryError,
    errors.NotFoundError: KeyError,
    errors.OutOfRangeError: IndexError,
    errors.MissingDependencyError: ImportError,
    TaskError: ValueError,
    EngineError: ValueError,
    ModelLoadError: RuntimeError,
    RequestError: RuntimeError,
    UnsupportedModel: RuntimeError,
    NotYet: AssertionError,
    Cancelled: Exception,
}


def module_name(path: Path) -> str:
    parts = ("headlab", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def builtin_raises(source: str, module: str) -> list[str]:
    """``module:line raise Name`` for each ``raise Name(...)`` / ``raise Name`` of a builtin exception class."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS and (module, exc.id) not in ALLOWED:
            found.append(f"{module}:{node.lineno} raise {exc.id}")
    return found


def test_no_builtin_exception_is_raised_on_purpose():
    found = [hit for path in sorted(ROOT.rglob("*.py")) for hit in builtin_raises(path.read_text(), module_name(path))]
    assert not found, f"raise a class of headlab.errors instead (it keeps the builtin as a base): {found}"


def test_the_scan_sees_a_builtin_raise():
    """The check can fail: one ``raise ValueError`` put back is found, an allowed one is not."""
    assert builtin_raises('def f():\n    raise ValueError("x")\n', "headlab.tasks") == [
        "headlab.tasks:2 raise ValueError"
    ]
    assert builtin_raises("raise KeyError\n", "headlab.results") == ["headlab.results:1 raise KeyError"]
    assert builtin_raises('raise SystemExit("bye")\n', "headlab.cli") == []
    assert builtin_raises('raise InputError("x")\n', "headlab.tasks") == []


@pytest.mark.parametrize("cls", list(KEPT_BASE), ids=lambda c: c.__name__)
def test_each_error_is_a_headlab_error_and_keeps_its_base(cls):
    assert issubclass(cls, errors.HeadlabError)
    assert issubclass(cls, KEPT_BASE[cls])


def test_every_class_of_errors_is_covered():
    classes = {obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, BaseException)}
    assert classes - {errors.HeadlabError} <= set(KEPT_BASE)
    assert set(errors.__all__) == {c.__name__ for c in classes}


def test_a_bad_argument_is_caught_both_ways():
    from headlab.analysis.selection import elbow_count

    for caught in (ValueError, errors.HeadlabError, errors.InputError):
        with pytest.raises(caught, match="takes a descending curve"):
            elbow_count([1.0, 2.0, 3.0])
