# Two entry points do all set-up on a fresh machine:
#   make run   -> venv + install + the nightly job (PIPELINE_ARGS to pass flags)
#   make test  -> system tools the tests start (Debian packages, when missing) + venv + install
#                 + the whole test suite with coverage
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIPELINE_ARGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command:package pairs for the real servers and tools the tests start
SYSTEM_TOOLS := dot:graphviz prometheus:prometheus promtool:prometheus \
	prometheus-pushgateway:prometheus-pushgateway chromium:chromium chromedriver:chromium-driver

.PHONY: run test test-fast lint install system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# make itself exits 2 whatever failed (it shows the pipeline's own code as "Error N"); cron calls
# .venv/bin/mlb-pipeline instead, which exits with the pipeline's code (README, "The nightly job").
run: $(STAMP)
	@PYTHONPATH=. $(BIN)/python pipeline.py run $(PIPELINE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: system-deps $(STAMP) lint
	PYTHONPATH=. $(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

test-fast: $(STAMP) lint
	PYTHONPATH=. $(BIN)/python -m pytest -m "not slow and not server and not prefect and not dvc" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts .pytest_cache .coverage dag_plan.dot dag_plan.svg
