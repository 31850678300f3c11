# Two entry points do all set-up on a fresh machine:
#   make run   -> venv + install + the nightly job (PIPELINE_ARGS to pass flags)
#   make test  -> system tools the tests start (Debian packages, when missing) + venv + install
#                 + the default test suite with coverage (every test not marked slow, a few minutes);
#                 make test-slow runs the slow ones (whole pipeline runs on real seasons, benches), and
#                 .ci/run runs both
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIPELINE_ARGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command:package pairs for the real servers and tools the tests start. Where systemd starts the Prometheus
# packages' own services on their default ports, the tests do not use them: each test starts its own
# process on free loopback ports with its own config and storage (tests/monitoring_servers.py).
SYSTEM_TOOLS := dot:graphviz prometheus:prometheus promtool:prometheus \
	prometheus-pushgateway:prometheus-pushgateway prometheus-alertmanager:prometheus-alertmanager \
	chromium:chromium chromedriver:chromium-driver

PREFECT_PORT ?= 4200

.PHONY: run test test-slow test-fast lint install lock system-deps clean prefect-server prefect-server-stop

# Every package at the version and hashes pinned in $(LOCK) (the runtime dependencies and the test,
# viewer and dask extras, for Python 3.11 on Linux x86_64), then the project itself, built with the
# locked setuptools: the same install on every machine, and the figures with it.
LOCK := requirements.lock
$(STAMP): pyproject.toml $(LOCK)
	$(PY) -m venv --clear $(VENV)  # exactly the lock: nothing left over from an earlier install
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Rewrites $(LOCK) from pyproject.toml, keeping every version it already pins; a new dependency gets
# today's newest. LOCK_ARGS="--upgrade-package NAME" (or --upgrade) moves pins on purpose. uv runs
# from a venv of its own ($(LOCK_TOOLS)), never the project's.
LOCK_TOOLS ?= $(VENV)-lock
UV_VERSION := 0.13.9
LOCK_ARGS ?=
lock:
	@[ -x $(LOCK_TOOLS)/bin/uv ] || { $(PY) -m venv $(LOCK_TOOLS) && \
	  $(LOCK_TOOLS)/bin/pip install --quiet uv==$(UV_VERSION); }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra test --extra viewer --extra dask --extra build \
	  --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --custom-compile-command "make lock   (keeps these pins; LOCK_ARGS='--upgrade-package NAME' moves one)" \
	  --quiet -o $(LOCK) $(LOCK_ARGS)

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
	@if PYTHONPATH=. $(BIN)/python -c "import sys; from utils.engine.prefect_api import answers; \
	  sys.exit(answers('http://127.0.0.1:$(PREFECT_PORT)/api') is not None)"; then \
	  echo "a Prefect server already answers on http://127.0.0.1:$(PREFECT_PORT)"; \
	else PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1 \
	  --port $(PREFECT_PORT) --background; fi

prefect-server-stop: $(STAMP)
	$(BIN)/prefect server stop

lint: $(STAMP)
	$(BIN)/ruff check .

# Two pytest workers, a test file each at a time (--dist loadfile keeps a file's shared fixtures in one
# worker): most of the suite waits on subprocesses and servers. TEST_WORKERS=0 runs it in one process.
# make test runs every test not marked slow (servers, Prefect and DVC included) and requires the
# coverage; make test-slow runs the slow ones (the pipeline on real seasons, backtests, the benches on a
# slice) and adds their coverage to the same report. .ci/run runs both, one after the other.
TEST_WORKERS ?= 2
PYTEST := PYTHONPATH=. $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
test: system-deps $(STAMP) lint
	$(PYTEST) -m "not slow" --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

test-slow: system-deps $(STAMP)
	$(PYTEST) -m slow --cov --cov-append --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

test-fast: $(STAMP) lint
	$(PYTEST) -m "not slow and not server and not prefect and not dvc" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) artifacts .pytest_cache .coverage dag_plan.dot dag_plan.svg
