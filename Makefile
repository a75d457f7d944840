# Two commands matter: `make test` and `make demo`. Each sets up what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup test test-fast check demo lint typecheck bench constraints clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt protocol/pyproject.toml frontend-console/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e protocol -e frontend-console
	touch $@

node_modules/.installed: package.json package-lock.json
	# The lockfile lists anvil's binary for every platform, so `npm ci` installs exactly
	# it and never rewrites it.
	npm ci --no-audit --no-fund
	touch $@

test: setup
	$(BIN)/pytest

# Unit tests only (no anvil, no devnet).
test-fast: setup
	$(BIN)/pytest -m "not devnet"

# Everything a reviewer runs: lint, strict typing, the whole suite.
check: lint typecheck test

demo: setup
	$(BIN)/python -m demo

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

constraints: $(VENV)/.installed
	( echo "# Full pin of every installed package (pip freeze of a fresh .venv). Regenerate with"; \
	  echo "#   make constraints"; $(BIN)/pip freeze --exclude-editable ) > constraints.txt

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .devnet
