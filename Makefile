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

PREFECT_PORT ?= 4200

.PHONY: run test test-fast lint install system-deps clean prefect-server prefect-server-stop

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

# A long-lived Prefect server for the nightly flow: started once in the background (Prefect's own
# --background, its pid in ~/.prefect), it keeps every run's history and serves the UI on
# http://127.0.0.1:$(PREFECT_PORT). Runs use it with run.prefect_api_url (README, "Prefect server").
prefect-server: $(STAMP)
	@if PYTHONPATH=. $(BIN)/python -c "import sys; from utils.prefect_api import answers; \
	  sys.exit(answers('http://127.0.0.1:$(PREFECT_PORT)/api') is not None)"; then \
	  echo "a Prefect server already answers on http://127.0.0.1:$(PREFECT_PORT)"; \
	else PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1 \
	  --port $(PREFECT_PORT) --background; fi

prefect-server-stop: $(STAMP)
	$(BIN)/prefect server stop

lint: $(STAMP)
	$(BIN)/ruff check .

# Two pytest workers, a test file each at a time (--dist loadfile keeps a file's shared fixtures in one
# worker): most of the suite waits on subprocesses and servers, so two cores run it in under 5 minutes
# instead of 7.5. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: system-deps $(STAMP) lint
	PYTHONPATH=. $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term-missing:skip-covered \
	  $(PYTEST_ARGS)

test-fast: $(STAMP) lint
	PYTHONPATH=. $(BIN)/python -m pytest -m "not slow and not server and not prefect and not dvc" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts .pytest_cache .coverage dag_plan.dot dag_plan.svg
