#!/usr/bin/env bash
# What `make bench` runs: every benchmark of BENCHMARKS.md with its section's command, one after
# the other (never two at once: they share the cores). Each writes .relearn/bench/<name>.md, headed
# by the command, commit, date and load, ready to paste; its stderr goes to <name>.log.
# BENCH_ONLY="streams_throughput training_pipeline" runs a subset; BENCH_QUICK=1 runs each at a
# tiny size where the script has --quick (to check the scripts, not for figures).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this tree's code, whatever is installed
PY=.venv/bin/python
OUT=.relearn/bench
mkdir -p "$OUT"
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  .venv/bin/relearn kafka up >/dev/null  # the dev broker on 127.0.0.1:9092 (kept running)
  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092
fi
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!*.md' || echo ' plus uncommitted changes')"

bench() {  # bench NAME ARGS... (ARGS: the full-size command's arguments)
  local name=$1; shift
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then return 0; fi
  local args=("$@")
  if [ -n "${BENCH_QUICK:-}" ]; then
    grep -q -- '"--quick"' "bench/$name.py" || { echo "== $name: no --quick, skipped" >&2; return 0; }
    args=(--quick)
  fi
  local file="$OUT/$name.md"
  echo "== $name: $PY bench/$name.py ${args[*]}" >&2
  {
    echo "Command: \`$PY bench/$name.py ${args[*]}\`"
    echo "Commit $commit, $(date -u '+%Y-%m-%d %H:%M') UTC, load $(cut -d' ' -f1 /proc/loadavg), $(nproc) cores."
    echo
  } >"$file"
  local started=$SECONDS
  "$PY" "bench/$name.py" "${args[@]}" >>"$file" 2>"$OUT/$name.log"
  echo >>"$file"
  echo "(${name}: $((SECONDS - started)) s, load $(cut -d' ' -f1 /proc/loadavg) at the end.)" >>"$file"
  echo "   -> $file ($((SECONDS - started)) s)" >&2
}

bench kafka_ceiling
bench sequential_simulation --runs 1000 --seed 1
bench simulator_effect_sizes --events 5000 --ab-runs 10
bench simulate_throughput --events 20000 --runs 5
bench registry_route
bench training_pipeline --sizes 10000 100000 --repeats 3
bench streams_throughput --events 200000 --repeats 3 --crossings 100 --background-rate 5000
bench streams_scale_out --events 200000 --repeats 3
bench streams_hops --events 100000 --rounds 3 --live-test
bench streams_inprocess --events 20000 --rounds 7 --ids 400000
bench loop_latency
echo "outputs in $OUT/*.md" >&2
