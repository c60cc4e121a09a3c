"""How fast `relearn simulate` produces outcome events, offline (default scores, no registry).

Each run is the command a user types, as a subprocess, into fresh topics under its own
`RELEARN_TOPIC_PREFIX` on the broker at KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092):
    relearn simulate --offline --rate 0 --events N --no-progress
Start-up is measured by the same command with --events 1 and subtracted for the rate.

    .venv/bin/python bench/simulate_throughput.py [--events 20000] [--runs 5]
    .venv/bin/python bench/simulate_throughput.py --quick      # 2,000 events, 2 runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bus.admin import create_topics  # noqa: E402
from bus.settings import KafkaSettings  # noqa: E402
from contracts.topics import Topics  # noqa: E402


def simulate(bootstrap: str, prefix: str, events: int, faults_dir: Path) -> float:
    """Wall-clock seconds of one `relearn simulate` run; raises if it did not deliver all."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RELEARN_TOPIC_PREFIX": prefix,
        "RELEARN_FAULTS_DIR": str(faults_dir),  # steady writes none; never the working directory's
    }
    argv = [sys.executable, "-m", "relearn.cli", "--log-level", "WARNING", "simulate"]
    argv += ["--offline", "--rate", "0", "--events", str(events), "--no-progress"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or f"messages {events}:" not in done.stdout:
        raise RuntimeError(f"relearn simulate failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 events, 2 runs")
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs = 2_000, 2
    bootstrap = KafkaSettings().bootstrap_servers
    prefix = f"bench-sim-{uuid.uuid4().hex[:8]}-"
    create_topics(bootstrap, Topics(prefix), partitions=4, replication=1)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as faults:
        startups, walls = [], []
        for _ in range(args.runs):  # interleaved, so both see the same load
            startups.append(simulate(bootstrap, prefix, 1, Path(faults)))
            walls.append(simulate(bootstrap, prefix, args.events, Path(faults)))
    startup, wall = statistics.median(startups), statistics.median(walls)
    print(
        f"relearn simulate --offline --rate 0 --events {args.events:,} --no-progress, "
        f"{args.runs} runs; {os.cpu_count()} cores, load {load_start:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    print()
    print("| measure | runs | median |")
    print("|---|---|---:|")
    print(f"| wall time, {args.events:,} events (s) | {' / '.join(f'{w:.1f}' for w in walls)} | {wall:.1f} |")  # fmt: skip
    print(f"| start-up: the same with --events 1 (s) | {' / '.join(f'{s:.1f}' for s in startups)} | {startup:.1f} |")  # fmt: skip
    print(f"| events/s after start-up | | {args.events / max(wall - startup, 1e-9):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
