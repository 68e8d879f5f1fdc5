"""The bad-input cases of every test file together (see bad_inputs.py): their names are unique across files,
there are at least 150 of them, and they cover every entry — the API, the loaders, the command line and the
explorer. That each error message is one line, each case checks itself."""

import importlib
from pathlib import Path

HERE = Path(__file__).parent
CASE_FILES = sorted(  # the files that keep a Catalogue of cases
    path.stem for path in HERE.glob("test_*.py") if path != Path(__file__) and "Catalogue(" in path.read_text()
)


def all_cases():
    return [case for stem in CASE_FILES for case in importlib.import_module(stem).CASES]


def test_catalogue_size_and_unique_names():
    cases = all_cases()
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), sorted({n for n in names if names.count(n) > 1})
    assert len(cases) >= 150, (len(cases), CASE_FILES)
    entries = {name.split(":")[0] for name in names}
    assert {"api", "loader", "cli", "explorer"} <= entries, entries
