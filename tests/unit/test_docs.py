"""The docs hold no figure, link or name that the code does not back: docs/performance.md is the rendering of the
benchmarks' results files, every relative link resolves, and docs/concepts.md's top-level table is
``headlab.__all__``. (The layout map is checked in test_layout.py, beside ``LAYERS``.)"""

import importlib.util
import re
from pathlib import Path

import pytest

import headlab

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def report():
    spec = importlib.util.spec_from_file_location("report", REPO / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_performance_page_is_generated_from_the_results_files():
    rendered = report().render()
    assert (DOCS / "performance.md").read_text() == rendered, (
        "docs/performance.md is not benchmarks/report.py's rendering of benchmarks/results/*.json (edited by hand, "
        "or a results file changed): run .venv/bin/python benchmarks/report.py"
    )


def test_every_results_file_names_its_date_command_and_source():
    import json

    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        assert data["name"] == path.stem, path
        assert (REPO / "benchmarks" / f"{path.stem}.py").is_file(), f"{path}: no benchmarks/{path.stem}.py"
        for key in ("title", "what", "date", "command", "machine", "source", "tables"):
            assert data.get(key), f"{path}: no {key}"


# --- links ------------------------------------------------------------------------------------------------------

PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def links(text: str) -> list[str]:
    """The targets of the markdown links and images of ``text``, outside fenced code and inline code."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


def test_link_reader_sees_links():
    assert links("see [a](b.md#c), ![x](y.png) and `[not](this.md)`\n```\n[nor](that.md)\n```\n") == [
        "b.md#c",
        "y.png",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: links to missing files: {broken}"


DOC_PATH = re.compile(r"\bdocs/[\w./-]*\w\.(?:md|png)\b")
NAMING = [
    *sorted((REPO / "headlab").rglob("*.py")),
    *sorted((REPO / "tests").rglob("*.py")),
    *sorted((REPO / "benchmarks").rglob("*.py")),
    *sorted((REPO / "notebooks").glob("*.ipynb")),
    REPO / "Makefile",
]


def test_every_docs_path_named_in_code_and_notebooks_exists():
    """Docstrings, comments, notebooks and the Makefile name doc pages by path (``docs/concepts/02-methods.md``):
    each must exist, so that moving a page fails here rather than leave a reader at a dead name."""
    missing = {}
    for path in NAMING:
        for name in DOC_PATH.findall(path.read_text(errors="replace")):
            if not (REPO / name).exists():
                missing.setdefault(str(path.relative_to(REPO)), []).append(name)
    assert not missing, f"doc paths that do not exist: {missing}"


def test_the_docs_path_reader_sees_paths():
    assert DOC_PATH.findall("see docs/concepts/02-methods.md, and (docs/gotchas.md).") == [
        "docs/concepts/02-methods.md",
        "docs/gotchas.md",
    ]


# --- the top level ----------------------------------------------------------------------------------------------


def top_level_table() -> list[str]:
    text = (DOCS / "concepts.md").read_text()
    section = text.split("\n## The top level\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def test_concepts_lists_exactly_the_top_level():
    names = top_level_table()
    assert len(names) == len(set(names)), names
    assert set(names) == set(headlab.__all__) - {"__version__"}, (
        "docs/concepts.md's '## The top level' table must list exactly headlab.__all__ (less __version__)"
    )


def test_the_top_level_table_is_read():
    assert "load_model" in top_level_table() and "HeadlabError" in top_level_table()
