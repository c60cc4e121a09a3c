"""Two streams workers against one on the same backlog: issue 17's "two workers >= 1.6x one".

Usage: .venv/bin/python bench/streams_scale_out.py [--events 200000] [--repeats 3] [--quick]
Needs a broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092); prints a Markdown table and
exits 1 if any run was not exact.

Each repeat, on fresh topics (4 partitions) with the same data (`streams.testing.outcome_events`,
seed 3: 2% repeats, 1% poison), runs one `relearn streams` process and two in one consumer group
(each its own data dir and web port), the order alternating from repeat to repeat (1 then 2, then
2 then 1), then the raw ceiling of bench/streams_throughput.py on the one-worker run's topic.
The workers start on empty topics; once the group is stable, every partition assigned and every
worker ready, the whole backlog is produced in one transaction (they read committed: it arrives at
once and no rebalance is in the timing). Rate: outcome events per second from the commit until
every valid event is counted in every worker's view (each worker follows the tables of all
partitions); also from the first counted sample, over the share not yet counted then (with a
backlog, one worker forwards most of it before its first count, so that figure is mostly the
sample hop's). Exact: every worker's /samples and daily sample counts equal the ground truth per
model type, and training-samples holds every valid id once. The group's assignment (its
cooperative-sticky assignor may give each worker one topic, i.e. one hop) is printed per run.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streams_hops import outcome_records, produce_at_once  # noqa: E402
from bench.streams_throughput import main_thread_cpu_seconds, raw_ceiling  # noqa: E402
from bus.admin import create_topics  # noqa: E402
from bus.local_broker import free_port  # noqa: E402
from bus.settings import KafkaSettings  # noqa: E402
from contracts.topics import Topics  # noqa: E402
from streams.testing import GroundTruth, outcome_events  # noqa: E402
from tests.streams.harness import (  # noqa: E402
    StreamsWorker,
    get_json,
    group_members_with_partitions,
    read_topic,
    wait_until,
)

THRESHOLD = 1000
PARTITIONS = 4
POLL_SECONDS = 0.2  # the views are polled this often (each poll: 2 GETs per worker)
APP_ID = "relearn-streams"  # StreamsSettings.streams_app_id: the group is prefix + this


@dataclass
class Run:
    """One run of `workers` worker processes on one backlog."""

    workers: int
    end_to_end: float  # outcome events/s from the backlog's commit until all are counted
    from_first: float  # outcome events/s from the first counted sample (nan: all at once)
    first_after: float  # seconds from the backlog's commit to the first counted sample
    first_share: float  # share of the valid events counted at the first counted sample
    cpu_us: float  # main-thread CPU per outcome event, summed over the workers
    process_cpu_us: float  # the workers' CPU per outcome event, all threads (librdkafka's too)
    cores_busy: float  # the machine's busy cores over the run (broker and neighbours included)
    broker_cpu_us: float  # the broker's CPU per outcome event (nan: its pid not given)
    split: str  # partitions per worker: "outcome 2+2, samples 2+2 (model types 1+1)"
    assignment: str  # each worker's partitions, and the partition of each model type's samples
    problems: list[str] = field(default_factory=list)


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process, all its threads, so far (/proc, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far, all cores (/proc/stat's first line)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def per_type_counts(worker: StreamsWorker, model_types: list[str]) -> dict[str, int] | None:
    """Samples counted per model type in a worker's view (commands x threshold + new), or None
    while it does not answer."""
    counts = {}
    for model_type in model_types:
        view = get_json(f"{worker.url}/samples/{model_type}")
        if view is None:
            return None
        counts[model_type] = view["retrain_commands"] * THRESHOLD + view["new_samples"]
    return counts


def daily_counts(worker: StreamsWorker, model_types: list[str]) -> dict[tuple[str, str, str], int]:
    """(model type, version, day) -> sample count, from a worker's /performance view."""
    rows: dict[tuple[str, str, str], int] = {}
    for model_type in model_types:
        for row in get_json(f"{worker.url}/performance/{model_type}?days=7") or []:
            rows[(model_type, row["version"], row["day"])] = row["sample_count"]
    return rows


def verdict(
    counts: list[dict[str, int] | None],
    daily: list[dict[tuple[str, str, str], int]],
    forwarded: Counter[str],
    truth: GroundTruth,
) -> list[str]:
    """What differs from the ground truth: each worker's counts per model type and daily sample
    counts, and the ids forwarded to training-samples (each valid one once); [] when exact."""
    problems = []
    want_daily = {key: day.sample_count for key, day in truth.daily.items()}
    for number, (seen, rows) in enumerate(zip(counts, daily, strict=True), 1):
        if seen is None:
            problems.append(f"worker {number}: /samples did not answer")
            continue
        for model_type, expected in sorted(truth.per_type.items()):
            if seen.get(model_type) != expected:
                problems.append(
                    f"worker {number}: {model_type} counted {seen.get(model_type)}, "
                    f"{expected} valid"
                )
        off = {k for k in set(want_daily) | set(rows) if rows.get(k) != want_daily.get(k)}
        if off:
            problems.append(f"worker {number}: {len(off)} of {len(want_daily)} day rows off")
    lost = len(truth.valid_ids - set(forwarded))
    if lost:
        problems.append(f"{lost} valid ids never forwarded")
    if set(forwarded) - truth.valid_ids:
        problems.append(f"{len(set(forwarded) - truth.valid_ids)} unknown ids forwarded")
    repeats = sum(forwarded.values()) - len(forwarded)
    if repeats:
        problems.append(f"{repeats} ids forwarded more than once")
    return problems


def steady_rate(events: int, valid: int, first_count: int, elapsed: float) -> float:
    """Outcome events/s from the first counted sample: the share of the events not yet counted
    then, over the time to count them (nan when everything was counted at the first sample)."""
    if elapsed <= 0 or first_count >= valid:
        return math.nan
    return events * (valid - first_count) / valid / elapsed


def all_assigned(workers: list[StreamsWorker], bootstrap: str, topics: Topics) -> bool:
    """Every worker ready, each partition of both input topics owned by exactly one of them,
    and the group stable with every worker holding partitions."""
    owned: Counter[tuple[str, int]] = Counter()
    for worker in workers:
        health = get_json(f"{worker.url}/healthz")
        if health is None or get_json(f"{worker.url}/readyz") is None:
            return False  # /readyz answers 503 (None) until assigned, restored and caught up
        for topic, partitions in (health.get("assigned") or {}).items():
            owned.update((topic, p) for p in partitions)
    wanted = {
        (t, p) for t in (topics.outcome_events, topics.training_samples) for p in range(PARTITIONS)
    }
    if set(owned) != wanted or max(owned.values()) != 1:
        return False
    group = f"{topics.prefix}{APP_ID}"
    return group_members_with_partitions(bootstrap, group) == len(workers)


def run_workers(
    bootstrap: str,
    topics: Topics,
    messages: list[tuple[bytes, bytes]],
    truth: GroundTruth,
    count: int,
    workdir: Path,
    broker_pid: int | None = None,
) -> Run:
    """`count` workers, assigned and idle on empty topics, then the backlog at once."""
    workdir.mkdir(parents=True, exist_ok=True)
    create_topics(bootstrap, topics, PARTITIONS, 1)
    workers = [
        StreamsWorker(
            bootstrap,
            topics.prefix,
            free_port(),
            workdir / f"worker-{number}",
            RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(THRESHOLD),
        )
        for number in range(1, count + 1)
    ]
    model_types = sorted(truth.per_type)
    valid = len(truth.valid_ids)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_web(120)
        wait_until(
            lambda: all_assigned(workers, bootstrap, topics),
            180,
            f"{count} workers not all assigned and ready; see {workdir}/*.log",
        )
        assigned = [(get_json(f"{w.url}/healthz") or {})["assigned"] for w in workers]
        pids = [w.process.pid for w in workers if w.process is not None]
        cpu_started = sum(main_thread_cpu_seconds(pid) for pid in pids)
        process_started = sum(process_cpu_seconds(pid) for pid in pids)
        busy_started = machine_busy_seconds()
        broker_started = process_cpu_seconds(broker_pid) if broker_pid else math.nan
        produce_at_once(bootstrap, outcome_records(topics, messages))
        committed = time.perf_counter()
        first_at, first_count = None, 0
        deadline = committed + 1800
        while True:
            views = [per_type_counts(w, model_types) for w in workers]
            now = time.perf_counter()
            if first_at is None and any(v and sum(v.values()) for v in views):
                first_at = now
                first_count = max(sum(v.values()) for v in views if v)
            if all(
                v is not None and all(v[t] >= truth.per_type[t] for t in model_types) for v in views
            ):
                break
            exited = [w.log_path for w in workers if w.process and w.process.poll() is not None]
            if exited or now > deadline:
                raise RuntimeError(f"not all counted in time or a worker exited: {exited}")
            time.sleep(POLL_SECONDS)
        done = time.perf_counter()
        cpu = sum(main_thread_cpu_seconds(pid) for pid in pids) - cpu_started
        process_cpu = sum(process_cpu_seconds(pid) for pid in pids) - process_started
        cores_busy = (machine_busy_seconds() - busy_started) / (done - committed)
        broker_cpu = process_cpu_seconds(broker_pid) - broker_started if broker_pid else math.nan
        counts = [per_type_counts(w, model_types) for w in workers]
        daily = [daily_counts(w, model_types) for w in workers]
    finally:
        for worker in workers:
            worker.stop()
    samples = read_topic(bootstrap, topics.training_samples)
    forwarded = Counter(orjson.loads(m.value())["event_id"] for m in samples)
    type_partition = {m.key().decode(): m.partition() for m in samples}
    outcome = [a[topics.outcome_events] for a in assigned]
    sample = [a[topics.training_samples] for a in assigned]
    types = [sum(1 for p in type_partition.values() if p in mine) for mine in sample]
    split = (
        f"outcome {'+'.join(str(len(o)) for o in outcome)}, samples "
        f"{'+'.join(str(len(s)) for s in sample)} (model types {'+'.join(map(str, types))})"
    )
    assignment = (
        "; ".join(
            f"worker {n}: outcome-events {o}, training-samples {s}"
            for n, (o, s) in enumerate(zip(outcome, sample, strict=True), 1)
        )
        + "; samples of "
        + ", ".join(f"{t} on {p}" for t, p in sorted(type_partition.items()))
    )
    assert first_at is not None
    return Run(
        count,
        len(messages) / (done - committed),
        steady_rate(len(messages), valid, first_count, done - first_at),
        first_at - committed,
        first_count / valid,
        cpu / len(messages) * 1e6,
        process_cpu / len(messages) * 1e6,
        cores_busy,
        broker_cpu / len(messages) * 1e6,
        split,
        assignment,
        verdict(counts, daily, forwarded, truth),
    )


def figure(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def ratio(two: float, one: float) -> float:
    return two / one if one and not (math.isnan(one) or math.isnan(two)) else math.nan


def median(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def describe(repeat: int, run: Run, load: float) -> str:
    return (
        f"repeat {repeat + 1}, {run.workers} worker(s): {figure(run.end_to_end)}/s end to end, "
        f"{figure(run.from_first)}/s from the first count ({run.first_after:.2f} s after the "
        f"commit, {run.first_share:.0%} counted then), {run.cpu_us:.1f} us main-thread CPU per "
        f"event ({run.process_cpu_us:.1f} all threads; broker {figure(run.broker_cpu_us, 1)}), "
        f"{run.cores_busy:.2f} cores busy, "
        f"{'; '.join(run.problems) or 'exact'}, load {load:.1f}\n"
        f"  ({run.split}: {run.assignment})"
    )


def table(rows: list[tuple[int, Run, Run, float, float, float]], events: int, valid: int) -> str:
    """The Markdown table: one row per repeat, then the medians (of the ratios for 2/1)."""
    lines = [
        f"\n{events:,} outcome events ({valid:,} valid), {PARTITIONS} partitions. Events/s end to "
        "end: from the backlog's commit until every valid event is counted; from the first "
        "count: from the first counted sample. CPU: main-thread us per outcome event, summed "
        "over the workers (all their threads in brackets); the broker's, all threads. Cores busy: the whole machine's "
        f"busy CPU time over the run's time, of {os.cpu_count()}.\n",
        "| repeat | order | 1 worker, events/s | 2 workers, events/s | 2/1 "
        "| from the first count, 1 / 2 | 2/1 | raw ceiling | CPU 1 / 2 | broker CPU 1 / 2 "
        "| cores busy 1 / 2 "
        "| 2 workers' partitions | load start / end | exact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for repeat, one, two, ceiling, load_start, load_end in rows:
        lines.append(
            f"| {repeat + 1} | {'1, 2' if repeat % 2 == 0 else '2, 1'} "
            f"| {figure(one.end_to_end)} | {figure(two.end_to_end)} "
            f"| {figure(ratio(two.end_to_end, one.end_to_end), 2)} "
            f"| {figure(one.from_first)} / {figure(two.from_first)} "
            f"| {figure(ratio(two.from_first, one.from_first), 2)} | {figure(ceiling)} "
            f"| {one.cpu_us:.1f} ({one.process_cpu_us:.0f}) / {two.cpu_us:.1f} "
            f"({two.process_cpu_us:.0f}) "
            f"| {figure(one.broker_cpu_us, 1)} / {figure(two.broker_cpu_us, 1)} "
            f"| {one.cores_busy:.2f} / {two.cores_busy:.2f} "
            f"| {two.split} "
            f"| {load_start:.1f} / {load_end:.1f} "
            f"| {'**NO**' if one.problems or two.problems else 'yes'} |"
        )
    ones, twos = [r[1] for r in rows], [r[2] for r in rows]

    def middle(of: Any, digits: int = 0) -> str:
        return figure(median([of(a, b) for a, b in zip(ones, twos, strict=True)]), digits)

    lines.append(
        f"| **median** | | **{middle(lambda a, b: a.end_to_end)}** "
        f"| **{middle(lambda a, b: b.end_to_end)}** "
        f"| **{middle(lambda a, b: ratio(b.end_to_end, a.end_to_end), 2)}** "
        f"| {middle(lambda a, b: a.from_first)} / {middle(lambda a, b: b.from_first)} "
        f"| {middle(lambda a, b: ratio(b.from_first, a.from_first), 2)} "
        f"| {figure(median([r[3] for r in rows]))} "
        f"| {middle(lambda a, b: a.cpu_us, 1)} ({middle(lambda a, b: a.process_cpu_us)}) "
        f"/ {middle(lambda a, b: b.cpu_us, 1)} ({middle(lambda a, b: b.process_cpu_us)}) "
        f"| {middle(lambda a, b: a.broker_cpu_us, 1)} / {middle(lambda a, b: b.broker_cpu_us, 1)} "
        f"| {middle(lambda a, b: a.cores_busy, 2)} / {middle(lambda a, b: b.cores_busy, 2)} "
        "| | | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 events, 1 repeat (a check)")
    parser.add_argument(
        "--broker-pid-file", type=Path, help="the broker's pid file: its CPU per event is shown"
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeats = 2_000, 1
    bootstrap = KafkaSettings().bootstrap_servers
    broker_pid = int(args.broker_pid_file.read_text()) if args.broker_pid_file else None
    messages, truth = outcome_events(args.events, seed=3)
    run = uuid.uuid4().hex[:8]
    rows: list[tuple[int, Run, Run, float, float, float]] = []
    problems: list[str] = []
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
        for repeat in range(args.repeats):
            load_start = os.getloadavg()[0]
            order = (1, 2) if repeat % 2 == 0 else (2, 1)
            runs: dict[int, Run] = {}
            for count in order:
                topics = Topics(f"bench-{run}-r{repeat}w{count}-")
                runs[count] = run_workers(
                    bootstrap,
                    topics,
                    messages,
                    truth,
                    count,
                    Path(tmp) / f"r{repeat}w{count}",
                    broker_pid,
                )
                problems += [
                    f"repeat {repeat + 1}, {count} worker(s): {p}" for p in runs[count].problems
                ]
                print(describe(repeat, runs[count], os.getloadavg()[0]))
            topic = Topics(f"bench-{run}-r{repeat}w1-").outcome_events
            ceiling = raw_ceiling(bootstrap, topic, len(messages))
            rows.append((repeat, runs[1], runs[2], ceiling, load_start, os.getloadavg()[0]))
    print(table(rows, args.events, len(truth.valid_ids)))
    print(f"machine load {os.getloadavg()[0]:.1f} at end")
    if problems:
        print("NOT EXACT:\n" + "\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
