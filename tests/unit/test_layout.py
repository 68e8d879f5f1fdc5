"""The package's layout is the pipeline: every import goes down it, none makes a cycle, none reaches for a
private name of another module. Read from the source (ast), including imports inside functions.

``LAYERS`` is also the module map of the docs: ``layout_table()`` renders it (docs/concepts.md, "Layout"), and
``python tests/unit/test_layout.py --write-docs`` writes it there."""

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "headlab"
DOCS = ROOT.parent / "docs" / "concepts.md"
START, END = "<!-- layout:start -->", "<!-- layout:end -->"

# Lower layers never import higher ones; modules of one layer may import each other (without cycles).
LAYERS = [
    (
        "headlab.errors",
        "headlab.models",
        "headlab.tasks",
        "headlab.files",
        "headlab.engine.nnsight_engine",
        "headlab.engine.ndif",
    ),
    ("headlab.engine",),
    ("headlab.metrics",),
    ("headlab.cache", "headlab.results"),
    ("headlab.scorers",),
    ("headlab.scoring",),
    ("headlab.analysis", "headlab.workshop"),
    ("headlab.viz",),
    ("headlab.cli", "headlab.__main__", "headlab"),
    ("headlab.testing",),  # helpers for tests and benchmarks: they may use anything, nothing in the product uses them
]


def module_name(path: Path) -> str:
    parts = ("headlab", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/unit/test_layout.py: add it to LAYERS")
    return best[0]


def resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[tuple[str, list[str]]]:
    """(imported headlab module, names taken from it) for one import statement of ``module``."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names if a.name.split(".")[0] == "headlab"]
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    if target.split(".")[0] != "headlab":
        return []
    out, names = [], []
    for alias in node.names:
        if f"{target}.{alias.name}" in MODULES:  # `from . import hooks`: a submodule
            out.append((f"{target}.{alias.name}", []))
        else:
            names.append(alias.name)
    return out + [(target, names)] if names else out


def imports() -> dict[str, list[tuple[str, list[str], int]]]:
    """module → [(imported module, names, line)]."""
    graph = {}
    for module, path in MODULES.items():
        edges = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges += [(target, names, node.lineno) for target, names in resolve(module, node)]
        graph[module] = edges
    return graph


GRAPH = imports()


def test_every_import_names_a_module_that_exists():
    missing = [f"{m}:{line} imports {t}" for m, edges in GRAPH.items() for t, _, line in edges if t not in MODULES]
    assert not missing, missing


def test_imports_go_down_the_pipeline():
    upward = [
        f"{m}:{line} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
        for m, edges in GRAPH.items()
        for t, _, line in edges
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, upward


def test_no_import_cycle():
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t, _, _ in GRAPH[m]:
            if state.get(t) == "open":
                pytest.fail("import cycle: " + " → ".join(stack[stack.index(t) :] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in GRAPH:
        if m not in state:
            visit(m)


def test_no_private_name_is_imported_across_modules():
    private = [
        f"{m}:{line} imports {n} from {t}"
        for m, edges in GRAPH.items()
        for t, names, line in edges
        for n in names
        if n.startswith("_")
    ]
    assert not private, private


def test_no_product_module_imports_the_test_helpers():
    """``headlab.testing`` (tiny models, the architecture zoo, slow references) ships for tests and benchmarks:
    the product works without it."""
    into = [
        f"{m}:{line} imports {t}"
        for m, edges in GRAPH.items()
        if not (m == "headlab.testing" or m.startswith("headlab.testing."))
        for t, _, line in edges
        if t == "headlab.testing" or t.startswith("headlab.testing.")
    ]
    assert not into, into


def test_the_checks_see_the_imports_they_guard():
    """The reader resolves relative imports at every depth (a check that sees nothing cannot fail)."""
    assert any(t == "headlab.engine.hooks" for t, _, _ in GRAPH["headlab.engine.replay"])
    assert any(t == "headlab.metrics" for t, _, _ in GRAPH["headlab.scorers.ablation"])
    assert any(t == "headlab.scoring" for t, _, _ in GRAPH["headlab.viz.explorer.app"])  # three dots up
    assert layer_of("headlab.engine.packing") < layer_of("headlab.scorers.attribution") < layer_of("headlab.viz.plot")


# --- the module map of the docs -------------------------------------------------------------------------------


def summary(module: str) -> str:
    """The first paragraph of ``module``'s docstring, on one line, with reST ``code`` as markdown `code`."""
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text())) or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    return re.sub(r"``([^`]+)``", r"`\1`", first).replace("|", "\\|") or "—"


def parts(package: str) -> list[str]:
    """The direct submodules of ``package`` that LAYERS does not name on their own (a subpackage ends in /)."""
    named = {m for layer in LAYERS for m in layer}
    out = []
    for module, path in MODULES.items():
        if module.rsplit(".", 1)[0] == package and module != package and module not in named:
            out.append(module.rsplit(".", 1)[1] + ("/" if path.name == "__init__.py" else ""))
    return sorted(out)


def layout_table() -> str:
    """LAYERS as a markdown table: one row per module it names, by layer (0 is the bottom), with the first
    paragraph of the module's docstring and, for a package, its other modules."""
    rows = ["| layer | module | what it is |", "|---:|---|---|"]
    for rank, layer in enumerate(LAYERS):
        for module in layer:
            if module not in MODULES:
                continue
            inside = parts(module) if MODULES[module].name == "__init__.py" and module != "headlab" else []
            name = f"`{module}`" + (f" ({', '.join(f'`{p}`' for p in inside)})" if inside else "")
            rows.append(f"| {rank} | {name} | {summary(module)} |")
    return "\n".join(rows) + "\n"


def documented_layout() -> str | None:
    text = DOCS.read_text() if DOCS.is_file() else ""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def test_docs_layout_map_is_generated_from_layers():
    assert documented_layout() == layout_table(), (
        "docs/concepts.md's layout map is not LAYERS' (a module, layer or docstring changed): "
        "run .venv/bin/python tests/unit/test_layout.py --write-docs"
    )


def write_docs() -> None:
    text = DOCS.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOCS} has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    DOCS.write_text(f"{head}{START}\n{layout_table()}{END}{rest.split(END, 1)[1]}")
    print(f"wrote the layout map into {DOCS}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-docs"]:
        raise SystemExit("usage: python tests/unit/test_layout.py --write-docs")
    write_docs()
