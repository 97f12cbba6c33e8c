# make run   – set up everything and serve the app on the sample project at http://localhost:8501,
#              with a training worker beside it (Ctrl+C stops both)
# make test  – set up everything, check the import layers, lint and dependencies, and run every test
#              (PostgreSQL, SeaweedFS and Chromium included)
# make lock  – regenerate requirements.txt, the lock, from pyproject.toml (after changing a dependency there)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test check lock setup venv system-packages api bench clean

# The lock (requirements.txt: every package pinned, test and sample tools included), then the project
# itself, editable and without dependencies, so `app`, `models` and `labeling` import from anywhere.
$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# requirements.txt is generated: pip-compile resolves pyproject.toml's dependencies with the extras
# test and sample, keeping every version already pinned there (upgrade one with
# `make lock LOCK_ARGS="--upgrade-package NAME"`).
LOCK_ARGS ?=
lock: venv
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --extra test --extra sample \
		--strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.txt $(LOCK_ARGS) pyproject.toml

# Debian packages the tests need: PostgreSQL (a throwaway cluster per run) and headless Chromium.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	fc-list 2>/dev/null | grep -qi dejavu || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

setup: venv
	$(PY) -m app.services.bootstrap

# The app and one training worker (models/worker.py) beside it; Ctrl+C stops both (the worker
# stops a run it is training and marks it failed, for Retry). More workers: `python -m models.worker`.
run: setup
	@trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT; \
	$(PY) -m models.worker & worker=$$!; \
	$(PY) -m streamlit run app/web.py --server.port $(PORT) --server.headless true

# Static checks, in pyproject.toml: the import layers (import-linter), ruff, declared dependencies (deptry).
check: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/deptry .

test: check system-packages
	$(PY) -m pytest

# The JSON API for mobile clients on http://localhost:8000 (schema at /docs), in
# FACETYPE_API_WORKERS processes (default 2): each holds its own gate and model and runs one
# request's inference on one thread, so throughput grows with the cores.
api: setup
	$(PY) -m uvicorn app.api:api --host 0.0.0.0 --port 8000 \
		--timeout-worker-healthcheck 60 --workers $$($(PY) -c 'from app.core.settings import get_settings; print(get_settings().api_workers)')

# Benchmarks print tables; they are run by hand, not by the tests.
# Every row of the performance table (README, Measured), each with the cores and what ran beside.
bench: setup system-packages
	$(PY) -m bench.classify
	$(PY) -m bench.cascade
	$(PY) -m bench.api_load
	$(PY) -m bench.memory
	$(PY) -m bench.try_it_browser
	$(PY) -m bench.models
	$(PY) -m bench.labeling_loop --seeds 0 1 2
	$(PY) -m bench.labeling_browser --accept enter
	$(PY) -m bench.paused_store

clean:
	rm -rf var tests/artifacts .pytest_cache
