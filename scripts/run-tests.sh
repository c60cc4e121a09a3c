#!/usr/bin/env bash
# What `make test` runs: the whole suite against a real broker (started by the test session unless
# KAFKA_BOOTSTRAP_SERVERS points at one), with test artifacts collected under test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
exec .venv/bin/pytest tests -p no:cacheprovider --durations=15 --junitxml=test-artifacts/junit.xml "$@"
