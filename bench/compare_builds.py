"""Two or more builds side by side: one bench script run against each commit's code, interleaved.

On a shared machine one run's figure moves with the neighbours' load, so builds are compared in
rounds (build A, build B, then B, A, ...) on the same broker. Each commit's tree is exported with
`git archive` into a temporary directory (no worktree, no checkout) and the bench script of the
current tree is copied into it, so every build is measured by the same script. Prints each run's
output, then a table of the figures matched by --summary (by default streams_throughput's
"(b) N/s (C us main-thread CPU per event)").

    .venv/bin/python bench/compare_builds.py --builds 58bd0eb bae7828 --rounds 4 -- \\
        bench/streams_throughput.py --events 200000 --repeats 1 --skip-latency
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STREAMS = r"\(b\) ([\d,]+)/s \(([\d.]+) us main-thread CPU per event\)"


def export(commit: str, into: Path) -> str:
    """The commit's tree under `into`; returns the commit's short id."""
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")
    return short


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", nargs="+", required=True, help="commits (HEAD for this one)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--summary", default=STREAMS, help="regex; its groups are tabulated")
    parser.add_argument(
        "script", help="a bench script of this tree, e.g. bench/streams_throughput.py"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    options = parser.parse_args()
    script = (ROOT / options.script).resolve()
    pattern = re.compile(options.summary)
    with tempfile.TemporaryDirectory(prefix="bench-builds-") as tmp:
        trees: dict[str, Path] = {}
        for commit in options.builds:
            tree = Path(tmp) / commit.replace("/", "_")
            short = export(commit, tree)
            target = tree / script.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(script, target)
            trees[short] = tree
        figures: dict[str, list[list[str]]] = {build: [] for build in trees}
        order = list(trees)
        for round_number in range(1, options.rounds + 1):
            for build in order if round_number % 2 else reversed(order):
                tree = trees[build]
                env = {**os.environ, "PYTHONPATH": str(tree)}
                done = subprocess.run(
                    [sys.executable, str(tree / script.relative_to(ROOT)), *options.args],
                    cwd=tree,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                print(f"### round {round_number}, {build} (exit {done.returncode})\n")
                print(done.stdout)
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                figures[build].extend(list(m.groups()) for m in pattern.finditer(done.stdout))
    print(f"| build | {' | '.join(f'round {i}' for i in range(1, options.rounds + 1))} | median |")
    print(f"|---|{'---|' * (options.rounds + 1)}")
    for build, rows in figures.items():
        cells = [" / ".join(row) for row in rows]
        firsts = [float(row[0].replace(",", "")) for row in rows if row]
        median = f"{statistics.median(firsts):,.1f}" if firsts else "-"
        print(f"| {build} | {' | '.join(cells)} | {median} (first figure) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
