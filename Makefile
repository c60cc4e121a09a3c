# relearn: `make run` runs the whole loop once on a local stack; `make test` runs every test on a real broker;
# `make bench` runs every benchmark of BENCHMARKS.md.
# Both set up what they need on a fresh machine and are quick when nothing changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
SYSTEM_DEPS := .relearn/.system-deps
KAFKA_JARS := .relearn/.kafka-jars

.PHONY: setup run test test-fast chaos bench bench-peers lint kafka-up kafka-down clean

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

# relearn's worker side by side with faust-streaming and quix-streams on the same job (BENCHMARKS.md,
# streams; ~1 h at full size on 2 cores). The peers live in their own venv: quixstreams caps
# confluent-kafka below 2.13, and .venv (relearn's own) keeps the newer one everyone else runs.
# BENCH_PEERS_ARGS="--events 20000 --rounds 2" runs it smaller.
PEERS_VENV := .venv-peers
PEERS_INSTALLED := $(PEERS_VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
BENCH_PEERS_ARGS ?= --events 200000 --rounds 3

$(PEERS_INSTALLED): pyproject.toml
	@test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --upgrade pip
	$(PEERS_VENV)/bin/pip install -q -e '.[peers]'
	@rm -f $(PEERS_VENV)/.installed-*
	@touch $@

bench-peers: $(PEERS_INSTALLED) $(SYSTEM_DEPS)
	PYTHONPATH=$(CURDIR) $(PEERS_VENV)/bin/python -m bench.peers.run $(BENCH_PEERS_ARGS)

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
	rm -rf .relearn $(VENV) $(PEERS_VENV)
