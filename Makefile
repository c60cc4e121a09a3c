# relearn: `make run` runs the whole loop once on a local stack; `make test` runs every test on a real broker;
# `make bench` runs every benchmark of BENCHMARKS.md.
# Both set up what they need on a fresh machine and are quick when nothing changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
SYSTEM_DEPS := .relearn/.system-deps
KAFKA_JARS := .relearn/.kafka-jars

.PHONY: setup run test test-fast chaos bench lint kafka-up kafka-down clean

setup: $(INSTALLED) $(SYSTEM_DEPS) $(KAFKA_JARS)

# The virtual environment is rebuilt only when pyproject.toml changes; pip's wheel cache
# means a rebuild on the same machine downloads nothing (torch is several GB).
$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,trainer]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# Java and Maven for the broker, PostgreSQL for the registry's store tests, kcat, Chromium and promtool for checks.
$(SYSTEM_DEPS): scripts/system-deps.sh
	@bash scripts/system-deps.sh
	@mkdir -p .relearn && touch $@

$(KAFKA_JARS): $(INSTALLED) $(SYSTEM_DEPS)
	$(BIN)/relearn kafka fetch
	@mkdir -p .relearn && touch $@

run: setup
	$(BIN)/relearn demo

test: setup
	bash scripts/run-tests.sh

chaos: setup
	RELEARN_CHAOS_SIZE=full $(BIN)/pytest tests/chaos -v

# Every benchmark of BENCHMARKS.md with its section's command (about an hour on 2 cores); outputs
# in .relearn/bench/<name>.md, ready to paste. BENCH_ONLY="name ..." runs a subset.
bench: setup
	bash scripts/bench.sh

LINTED := contracts bus streams training registry simulator relearn tests bench scripts

# ruff (style, blind excepts, complexity), mypy (strict on contracts/, bus/ and the pure rules) and
# import-linter (layers, services independent); CI runs it before the tests.
lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

kafka-up: setup
	$(BIN)/relearn kafka up

kafka-down:
	$(BIN)/relearn kafka down

clean:
	rm -rf .relearn $(VENV)
