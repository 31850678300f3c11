# Two entry points do all set-up on a fresh machine:
#   make run   -> venv + install + the nightly job (PIPELINE_ARGS to pass flags)
#   make test  -> venv + install + the whole test suite with coverage
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIPELINE_ARGS ?=

.PHONY: run test test-fast install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	PYTHONPATH=. $(BIN)/python pipeline.py run $(PIPELINE_ARGS)

test: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

test-fast: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m pytest -m "not slow and not server and not prefect" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts .pytest_cache .coverage dag_plan.dot dag_plan.svg
