#!/usr/bin/env bash
# Runs every chaos scenario N times in a row (one pytest session, one broker) and writes each
# scenario's pass count ("passed k/N at <commit>") into RELIABILITY.md's "repeated" column.
# Usage: scripts/chaos-repeat.sh N [pytest args...]   (RELEARN_CHAOS_SIZE=full for full size)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:?usage: scripts/chaos-repeat.sh N [pytest args...]}"
shift
exec .venv/bin/pytest tests/chaos -p no:cacheprovider --repeat-scenarios "$count" "$@"
