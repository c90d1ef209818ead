# cdrbill — the commands the README documents. `make demo` and `make test` set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo run test lint ui bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cdrbill needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## land the sample month and run bill cycle 2026-10 end to end
demo: setup
	$(BIN)/cdrbill demo

## run one cycle on whatever has landed: make run CYCLE=2026-10
run: setup
	$(BIN)/cdrbill run --cycle $(CYCLE)

## lint, type-check and run the whole test suite (what CI runs)
test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check pipeline assets data_samples tests bench
	$(BIN)/mypy

## the benchmark (never part of make test): make bench SIZE=100k|1m|10m REPEAT=3; results in bench/results/
SIZE ?= 1m
REPEAT ?= 3
bench: setup
	$(BIN)/python -m bench --size $(SIZE) --repeat $(REPEAT) --readme

## the Dagster UI on http://127.0.0.1:3000 with a persistent instance under the home directory
ui: setup
	$(BIN)/cdrbill ui

clean:
	rm -rf $(VENV) .cdrbill .bench
