"""Main-thread CPU per event of one streams worker, per hop, and where it goes (py-spy).

Usage: .venv/bin/python bench/streams_hops.py [--events 100000] [--rounds 3] [--profile]
       [--live-test]
Needs a broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092); prints Markdown tables.

Each round runs one `relearn streams` process twice, each on fresh topics, first assigned and
idle, then given its whole backlog at once (one producer transaction, read_committed):
- both hops: the outcome events of `streams.testing.outcome_events` (2% repeats, 1% poison) on
  outcome-events; the worker validates, de-duplicates and forwards them, then counts what it
  forwarded;
- sample hop alone: the same valid events as the worker would forward them (source headers
  included) put on training-samples directly; the worker only counts them;
- with --live-test, also both hops while a candidate is under test (registry-events show v1.1 at
  0.1 against v1.0 since 15 minutes ago), every event served by one of them and carrying
  `served_at`, as a deployment sends them: the sample hop then also feeds the A/B test. The run
  checks that every valid event entered the test (the arms' samples per model type).
Each is timed by the worker's main-thread CPU (from /proc) from the backlog's production until
every sample is counted: CPU time moves much less with the neighbours' load than a rate does. The
outcome hop is the difference, per outcome event. With --profile, py-spy samples the worker's
main thread in the first round of each and prints the functions with the largest shares.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streams_throughput import counted, main_thread_cpu_seconds  # noqa: E402
from bus.admin import create_topics  # noqa: E402
from bus.clients import make_producer  # noqa: E402
from bus.dead_letters import Headers  # noqa: E402
from bus.local_broker import free_port  # noqa: E402
from bus.settings import KafkaSettings  # noqa: E402
from contracts.events import (  # noqa: E402
    RegistryEventOccurred,
    RegistryEventType,
    forwarded_json,
    to_json,
)
from contracts.model_types import ModelTypeCatalog  # noqa: E402
from contracts.topics import Topics  # noqa: E402
from contracts.validation import OutcomeRejected  # noqa: E402
from streams.processing import (  # noqa: E402
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    forwardable_outcome,
)
from streams.testing import MODEL_TYPES, GroundTruth, outcome_events  # noqa: E402
from tests.streams.harness import StreamsWorker, get_json, produce, wait_until  # noqa: E402

THRESHOLD = 1000
PARTITIONS = 4


def forwarded(messages: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes, int, int]]:
    """(key, value, source partition, source offset) of each sample the worker would forward
    (its own check, `forwardable_outcome`; first sightings only; the source position is made
    up, distinct per sample)."""
    catalog, now = ModelTypeCatalog(), datetime.now(UTC)
    samples, seen = [], set()
    for _, raw in messages:
        try:
            fields = forwardable_outcome(raw, catalog, now)
        except OutcomeRejected:
            continue
        if fields["event_id"] in seen:
            continue
        seen.add(fields["event_id"])
        position = len(samples)
        samples.append(
            (
                fields["model_type"].encode(),
                forwarded_json(fields),
                position % PARTITIONS,
                position // PARTITIONS,
            )
        )
    return samples


def produce_at_once(
    bootstrap: str, records: list[tuple[str, bytes, bytes, Headers | None]]
) -> None:
    """Every record in one transaction: the worker (read_committed) sees them all at once, as
    the backlog of a worker that was down, while its CPU clock already runs."""
    producer = make_producer(
        bootstrap,
        **{
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "transactional.id": f"bench-hops-{uuid.uuid4().hex[:8]}",
        },
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for topic, key, value, headers in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.commit_transaction(120)


def outcome_records(topics: Topics, messages: list[tuple[bytes, bytes]]) -> list[Any]:
    return [(topics.outcome_events, key, value, None) for key, value in messages]


def sample_records(topics: Topics, samples: list[tuple[bytes, bytes, int, int]]) -> list[Any]:
    return [
        (
            topics.training_samples,
            key,
            value,
            [
                (SOURCE_PARTITION_HEADER, str(partition).encode()),
                (SOURCE_OFFSET_HEADER, str(offset).encode()),
            ],
        )
        for key, value, partition, offset in samples
    ]


def candidate_under_test(since: datetime) -> list[tuple[bytes, bytes]]:
    """registry-events of each model type: v1.0 in production, then v1.1 at 0.1 from `since`."""
    events = []
    for model_type in MODEL_TYPES:
        for version, status, weights, at in (
            ("v1.0", "production", {"v1.0": 1.0}, since - timedelta(minutes=1)),
            ("v1.1", "staging", {"v1.0": 0.9, "v1.1": 0.1}, since),
        ):
            event = RegistryEventOccurred(
                type=RegistryEventType.VERSION_REGISTERED,
                model_type=model_type,
                version=version,
                status=status,
                weights=weights,
                occurred_at=at,
            )
            events.append((model_type.encode(), to_json(event)))
    return events


def all_in_the_test(truth: GroundTruth) -> Any:
    """A check of a live-test run: every valid event of each type is in one of its test's arms."""

    def check(worker: StreamsWorker) -> None:
        for model_type in MODEL_TYPES:
            view = get_json(f"{worker.url}/abtest/{model_type}") or {}
            entered = sum(
                (view.get(arm) or {}).get("samples", 0) for arm in ("baseline", "candidate")
            )
            assert view.get("running") and entered == truth.per_type[model_type], (
                f"{model_type}: {entered} of {truth.per_type[model_type]} entered the test: {view}"
            )

    return check


def run_worker(
    bootstrap: str,
    topics: Topics,
    records: list[Any],
    workdir: Path,
    valid: int,
    profile: Path | None,
    registry: list[tuple[bytes, bytes]] | None = None,
    check: Any = None,
) -> float:
    """Main-thread CPU seconds of one worker, assigned and idle on empty topics, from the
    moment its backlog is produced until every sample is counted. `registry`: registry-events
    on the topic before the worker starts; `check(worker)` runs once all is counted."""
    create_topics(bootstrap, topics, PARTITIONS, 1)
    if registry:
        produce(bootstrap, topics.registry_events, registry)
    worker = StreamsWorker(
        bootstrap,
        topics.prefix,
        free_port(),
        workdir,
        RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(THRESHOLD),
    )
    model_types = ["calling_score", "outcome_prediction"]
    spy = None
    try:
        worker.start()
        worker.wait_web()
        wait_until(
            lambda: all(
                len(partitions) == PARTITIONS
                for partitions in (
                    (get_json(f"{worker.url}/healthz") or {}).get("assigned") or {"": []}
                ).values()
            ),
            120,
            "not assigned",
        )
        assert worker.process is not None
        if profile is not None:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(worker.process.pid),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu_started = main_thread_cpu_seconds(worker.process.pid)
        produce_at_once(bootstrap, records)
        wait_until(
            lambda: counted(worker, THRESHOLD, model_types) >= valid, 1800, "not all counted"
        )
        cpu = main_thread_cpu_seconds(worker.process.pid) - cpu_started
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            spy.wait(timeout=60)
        if check is not None:
            check(worker)
    finally:
        worker.stop()
    return cpu


def top_functions(path: Path, count: int = 18) -> str:
    """The main thread's samples by function: self share and inclusive share."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return "(no profile: py-spy missing or not allowed to attach?)"
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or not frames[0].startswith("_run_module_as_main"):
            continue  # not the main thread
        samples = int(number)
        total += samples
        names = [frame.split(" (")[0] for frame in frames]
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    rows = [
        f"| `{name}` | {own[name] / total:.0%} | {inclusive[name] / total:.0%} |"
        for name, _ in own.most_common(count)
    ]
    return (
        f"main thread, {total} samples\n\n| function | self | inclusive |\n|---|---|---|\n"
        + "\n".join(rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the first round")
    parser.add_argument(
        "--live-test", action="store_true", help="also both hops with a candidate under test"
    )
    args = parser.parse_args()
    bootstrap = KafkaSettings().bootstrap_servers
    messages, truth = outcome_events(args.events, seed=3)
    test_since = datetime.now(UTC) - timedelta(minutes=15)
    live_messages, live_truth = outcome_events(args.events, seed=3, served_since=test_since)
    samples = forwarded(messages)
    valid = len(truth.valid_ids)
    assert len(samples) == valid
    run = uuid.uuid4().hex[:8]
    both_us, sample_us, outcome_us, live_us = [], [], [], []
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-hops-") as tmp:
        workdir = Path(tmp)
        for round_ in range(args.rounds):
            profile = args.profile and round_ == 0
            both = Topics(f"bench-{run}-b{round_}-")
            alone = Topics(f"bench-{run}-s{round_}-")
            cpu_both = run_worker(
                bootstrap,
                both,
                outcome_records(both, messages),
                workdir / f"b{round_}",
                valid,
                workdir / "both.txt" if profile else None,
            )
            cpu_samples = run_worker(
                bootstrap,
                alone,
                sample_records(alone, samples),
                workdir / f"s{round_}",
                valid,
                workdir / "samples.txt" if profile else None,
            )
            if args.live_test:
                live = Topics(f"bench-{run}-l{round_}-")
                cpu_live = run_worker(
                    bootstrap,
                    live,
                    outcome_records(live, live_messages),
                    workdir / f"l{round_}",
                    len(live_truth.valid_ids),
                    workdir / "live.txt" if profile else None,
                    registry=candidate_under_test(test_since),
                    check=all_in_the_test(live_truth),
                )
                live_us.append(cpu_live / args.events * 1e6)
                print(f"round {round_ + 1}: both hops, candidate under test {live_us[-1]:.1f} us")
            both_us.append(cpu_both / args.events * 1e6)
            sample_us.append(cpu_samples / valid * 1e6)
            outcome_us.append((cpu_both - cpu_samples) / args.events * 1e6)
            print(
                f"round {round_ + 1}: both hops {both_us[-1]:.1f} us per outcome event, sample "
                f"hop {sample_us[-1]:.1f} us per sample, outcome hop {outcome_us[-1]:.1f} us "
                f"per outcome event; load {os.getloadavg()[0]:.1f}"
            )
            if profile:
                for name in ("both", "samples", "live"):
                    kept = Path("test-artifacts") / f"streams-hops-{name}.pyspy.txt"
                    kept.parent.mkdir(exist_ok=True)
                    source = workdir / f"{name}.txt"
                    if source.exists():
                        kept.write_bytes(source.read_bytes())
                    print(f"\nprofile, {name}:\n\n{top_functions(kept)}\n")
    print(
        f"\n| {args.events:,} outcome events ({valid:,} valid), main-thread CPU, median of "
        f"{args.rounds} | us per event |\n|---|---|"
    )
    print(f"| both hops, per outcome event | {statistics.median(both_us):.1f} |")
    print(
        f"| outcome hop (both minus samples), per outcome event | {statistics.median(outcome_us):.1f} |"
    )
    print(f"| sample hop alone, per sample | {statistics.median(sample_us):.1f} |")
    if live_us:
        print(
            "| both hops, a candidate under test (every event served_at, in the test), per "
            f"outcome event | {statistics.median(live_us):.1f} |"
        )
    print(f"machine load {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
