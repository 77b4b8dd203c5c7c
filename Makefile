# Two commands do all set-up:  `make run` (the main job)  and  `make test` (the test suite).
# Both create .venv when absent and install the project into it (torch==2.13.0 first where pip
# finds that wheel, else the ordinary torch), then re-install only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DEA_HOME ?= $(CURDIR)/.dea
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: run test setup bench clean

run: $(STAMP)
	$(BIN)/dea run

test: $(STAMP)
	$(BIN)/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 || $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python benchmarks/features_throughput.py --out benchmarks/results/features_throughput.json

clean:
	rm -rf .dea .prefect .pytest_cache
