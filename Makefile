# Two commands matter: `make test` and `make demo`. Each sets up what it needs.
# CI (.ci/run) runs `make check`: lint, format check, typecheck, then `make test`; then
# `make riscv-check`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup test test-fast fuzz check riscv-check riscv-memory demo lint typecheck bench incentives constraints clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt protocol/pyproject.toml frontend-console/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# One resolve: the dev tools plus our two packages with the dependencies they declare,
	# every version held to constraints.txt.
	$(BIN)/pip install --quiet -c constraints.txt -r requirements-dev.txt \
	  -e protocol -e "frontend-console[examples]"
	$(BIN)/pip check
	touch $@

node_modules/.installed: package.json package-lock.json
	# The lockfile lists anvil's binary for every platform, so `npm ci` installs exactly
	# it and never rewrites it.
	npm ci --no-audit --no-fund
	touch $@

test: setup
	$(BIN)/pytest

# Unit tests only (no anvil, no devnet, no fresh-venv packaging test).
test-fast: setup
	$(BIN)/pytest -m "not devnet and not slow"

# Property-based fuzzing of the whole DApp (tests/test_state_machine.py) with many more
# examples than `make test` and a random seed; the seed is printed, to reproduce a failure.
DEML_FUZZ_EXAMPLES ?= 10000
ifndef DEML_FUZZ_SEED
DEML_FUZZ_SEED := $(shell date +%s%N | cut -c1-12)
endif
FUZZ_AGAIN = make fuzz DEML_FUZZ_SEED=$(DEML_FUZZ_SEED) DEML_FUZZ_EXAMPLES=$(DEML_FUZZ_EXAMPLES)
fuzz: setup
	@echo "fuzz: $(DEML_FUZZ_EXAMPLES) examples, seed $(DEML_FUZZ_SEED); reproduce: $(FUZZ_AGAIN)"
	DEML_FUZZ_EXAMPLES=$(DEML_FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider --timeout=0 \
	  tests/test_state_machine.py::test_dapp_state_machine \
	  --hypothesis-seed=$(DEML_FUZZ_SEED) --hypothesis-show-statistics \
	  || { echo "fuzz failed; reproduce: $(FUZZ_AGAIN)"; exit 1; }

# Everything a reviewer runs, and what CI runs: lint, format check, strict typing, the whole
# suite. Each prerequisite depends on setup, so a fresh clone needs nothing else.
check: lint typecheck test

# The machine's userland: builds (once; cached under ~/.cache/deml, keyed by the package lists)
# a Debian trixie riscv64 root with debootstrap + qemu-user-static (installed with apt-get if
# missing), runs the unchanged DApp in it on recorded scenarios and requires every output to
# equal x86_64's (docs/machine.md). Needs root: apt-get, binfmt_misc, chroot.
riscv-check: setup
	$(BIN)/python -m riscv

# The DApp's peak RSS with the blob quota full and the costliest admitted evaluations, native
# and under qemu in the same riscv64 root: what sizes ram_length (docs/machine.md, "RAM").
riscv-memory: setup
	$(BIN)/python -m riscv.memory

demo: setup
	$(BIN)/python -m demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

# The strategy simulator (docs/incentives.md): which strategies pay, over whole jobs.
incentives: setup
	$(BIN)/python -m bench.incentives

constraints: $(VENV)/.installed
	( echo "# Full pin of every installed package (pip freeze of a fresh .venv). Regenerate with"; \
	  echo "#   make constraints"; $(BIN)/pip freeze --exclude-editable ) > constraints.txt

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .devnet
