# make run   – set up everything and serve the app on the sample project at http://localhost:8501
# make test  – set up everything and run every test (PostgreSQL, SeaweedFS and Chromium included)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test setup venv system-packages api bench clean

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

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

run: setup
	$(PY) -m streamlit run app/main.py --server.port $(PORT) --server.headless true

test: venv system-packages
	$(PY) -m pytest

# The JSON API for mobile clients on http://localhost:8000 (schema at /docs).
api: setup
	$(PY) -m uvicorn app.api:api --host 0.0.0.0 --port 8000

# Benchmarks print tables; they are run by hand, not by the tests.
bench: setup system-packages
	$(PY) -m bench.cascade
	$(PY) -m bench.models
	$(PY) -m bench.api_load
	$(PY) -m bench.try_it_browser

clean:
	rm -rf var tests/artifacts .pytest_cache
