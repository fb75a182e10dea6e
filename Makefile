# Thusa: the README's commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
# Test processes (pytest-xdist); each has its own PostgreSQL database (test_gw0, ...) and Redis database.
TEST_WORKERS ?= auto

.PHONY: run test worker lint format bench clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/activate
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/activate
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime ## install, migrate, seed demo data, start web + worker + scheduler (+ embedded Redis)
	$(PY) -m app.launcher

test: $(VENV)/.dev ## install and run the whole suite with coverage (needs PostgreSQL and Redis on 127.0.0.1)
	$(PY) -m pytest -n $(TEST_WORKERS)

worker: $(VENV)/.runtime ## one more worker against the configured Redis
	$(VENV)/bin/flask --app wsgi worker

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.dev
	@set -e; scripts=$$(ls bench/*.py 2>/dev/null || true); \
	if [ -z "$$scripts" ]; then echo "no benchmarks yet (bench/README.md)"; exit 0; fi; \
	for script in $$scripts; do echo "== $$script"; $(PY) $$script; done

clean:
	rm -rf $(VENV) instance .pytest_cache .coverage htmlcov
