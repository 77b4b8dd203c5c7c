# Two commands do all set-up:  `make run` (the main job)  and  `make test` (the test suite).
# Both create .venv when absent and install the project into it at the exact versions of
# constraints.txt (torch first), then re-install only when pyproject.toml or constraints.txt change.
# `make lock` regenerates constraints.txt from pyproject.toml's ranges (see that target).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt
TORCH  ?= torch==2.13.0
export DEA_HOME ?= $(CURDIR)/.dea
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: run test test-fast setup bench mutate lock clean

run: $(STAMP)
	$(BIN)/dea run

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

# The quick tier while editing: no servers, subprocesses or process clusters, nothing over ~10 s
# (markers in pyproject.toml). `make test` (what CI runs) still runs everything.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration and not slow"

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) torch
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python benchmarks/features_throughput.py --out benchmarks/results/features_throughput.json

# Mutation testing of the critical code (mutmut, the `mutation` extra; not part of `make test`/CI):
# hashing.py, cross_ids of pipeline.py, metrics.py, the promotion rule and aliases of registry.py, the
# DEA block and the collapse-avoiding mask. Config in pyproject.toml [tool.mutmut]: each mutant runs
# only the tests of that selection that call the mutated function. Mutants and results go to
# ./mutants/ (git-ignored by its own .gitignore); `mutmut show NAME` prints one mutant's diff,
# `mutmut browse` is the interactive view. One module: `make mutate MUTANTS='dea_model.metrics.*'`.
# Results and the survivors' verdicts: benchmarks/results/mutation.md.
MUTATE_REGISTRY := decide _finite promoted_by
MUTATE_ALIASES  := resolve _parse _exists _dangling _last_good alias_problems _state aliases champion \
                   champion_history log _lock _write _edit _note set_alias promote rollback remove _rebuilt repair
MUTANTS ?= 'features.hashing.*' 'features.pipeline.x_cross_id_codes__mutmut_*' 'dea_model.metrics.*' \
           $(foreach f,$(MUTATE_REGISTRY),'dea_model.registry.x_$(f)__mutmut_*') \
           $(foreach f,$(MUTATE_ALIASES),'dea_model.registry.x?Registry?$(f)__mutmut_*') \
           'dea_model.models.dea.*' 'dea_model.layers.attention.*'
MUTATE_JOBS ?= 2

mutate: $(STAMP)
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[test,mutation]'
	mkdir -p mutants && printf '*\n' > mutants/.gitignore
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTANTS)
	$(BIN)/mutmut results | { grep -v ': not checked' || true; }   # the survivors (other pipeline.py functions: not run)

# Regenerate constraints.txt: a fresh temporary venv, $(TORCH) first, then the project with every
# extra resolved WITHOUT constraints (the newest versions pyproject.toml allows), then `pip freeze`
# minus the project (torch without its local label, e.g. +cpu). Then `make test`, and commit
# pyproject.toml and constraints.txt together. Another torch: `make lock TORCH=torch==X.Y.Z`.
lock:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; py="$$tmp/venv/bin/python"; \
	$$py -m pip install -q --upgrade pip; \
	$$py -m pip install -q '$(TORCH)'; \
	$$py -m pip install -q -e '.[test,mutation]'; \
	$$py -m pip check; \
	{ echo "# The exact versions the test suite passes with (Python $$($$py -c 'import platform; print(platform.python_version())'), Linux); pyproject.toml keeps the ranges."; \
	  echo "# Every install in the Makefile uses it (pip install -c $(LOCK) ...: setup, test, run, bench, mutate)."; \
	  echo "# Made by \`make lock\`: a fresh temporary venv, $(TORCH) first, then -e '.[test,mutation]' resolved"; \
	  echo "# WITHOUT constraints, then \`pip freeze\` minus the project itself (torch without its local label such"; \
	  echo "# as +cpu, so the CPU wheel and PyPI's build both satisfy it). Run \`make test\` before committing it."; \
	  $$py -m pip freeze --exclude-editable | grep -v -i -e '^dea-platform' -e '^#' -e '^-e ' \
	    | sed 's/^\(torch==[^+]*\)+.*/\1/'; } > "$$tmp/lock.txt"; \
	mv "$$tmp/lock.txt" $(LOCK)
	@echo "wrote $(LOCK); now run 'make test' and commit pyproject.toml and $(LOCK) together"

clean:
	rm -rf .dea .prefect .pytest_cache
