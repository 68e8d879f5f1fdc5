"""Fixtures of the unit tests: the context of the bad-input cases (tests/unit/bad_inputs.py), built once."""

import pytest
from bad_inputs import context


@pytest.fixture(scope="session")
def bad_inputs(tiny_model, tiny_llama, toy_task, tmp_path_factory):
    """What every bad-input case takes as ``c``: see bad_inputs.context."""
    return context(tiny_model, tiny_llama, toy_task, tmp_path_factory.mktemp("bad_inputs"))
