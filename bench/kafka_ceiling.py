"""Broker start time (cold and warm) and this machine's raw Kafka ceiling for ~300-byte JSON events.

Usage: .venv/bin/python bench/kafka_ceiling.py [--events 200000] [--skip-cold]
Starts its own brokers on free ports in temporary directories; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from bus import local_broker
from bus.admin import create_topics
from bus.clients import make_consumer, make_producer
from bus.local_broker import free_port
from contracts.topics import Topics


def sample_event(i: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.UUID(int=i)),
            "model_type": "calling_score",
            "model_version": "v1.0",
            "subject_id": f"subject-{i % 50_000}",
            "features": [round((i * 7 + k) % 100 / 100, 2) for k in range(23)],
            "prediction": 0.42,
            "outcome_score": 0.5,
            "positive_outcome": i % 2 == 0,
            "occurred_at": "2026-11-26T10:00:00Z",
        }
    )


def time_start(cache: Path | None) -> float:
    """Seconds from nothing to an AdminClient seeing the broker (cache=None: warm jar cache)."""
    env_before = dict(os.environ)
    with tempfile.TemporaryDirectory() as workdir:
        if cache is not None:
            os.environ["RELEARN_CACHE_DIR"] = str(cache / "relearn")
            os.environ["RELEARN_MAVEN_REPO"] = str(cache / "m2")
        layout = local_broker.ClusterLayout(Path(workdir), 1, free_port())
        started = time.perf_counter()
        local_broker.up(layout, timeout=300)
        elapsed = time.perf_counter() - started
        local_broker.down(layout)
    os.environ.clear()
    os.environ.update(env_before)
    return elapsed


def produce_rate(bootstrap: str, topic: str, payloads: list[bytes]) -> float:
    producer = make_producer(bootstrap, **{"linger.ms": 20, "batch.size": 1_000_000})
    started = time.perf_counter()
    for i, raw in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, raw, key=str(i % 1000).encode())
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return len(payloads) / (time.perf_counter() - started)


def consume_rate(bootstrap: str, topic: str, expected: int) -> float:
    consumer = make_consumer(
        bootstrap, f"bench-{uuid.uuid4().hex[:8]}", **{"fetch.max.bytes": 52_428_800}
    )
    consumer.subscribe([topic])
    seen = 0
    started = None
    while seen < expected:
        batch = consumer.consume(10_000, timeout=1.0)
        if batch and started is None:
            started = time.perf_counter()
        for message in batch:
            if message.error() is None:
                orjson.loads(message.value())
                seen += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return seen / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()

    rows: list[tuple[str, str]] = []
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cold:
            rows.append(
                (
                    "broker start, cold (jar download + format + start)",
                    f"{time_start(Path(cold)):.1f} s",
                )
            )
    warm = [time_start(None) for _ in range(args.repeats)]
    rows.append(
        (f"broker start, warm (median of {args.repeats})", f"{statistics.median(warm):.1f} s")
    )

    payloads = [sample_event(i) for i in range(args.events)]
    size = statistics.mean(len(p) for p in payloads)
    with tempfile.TemporaryDirectory() as workdir:
        layout = local_broker.ClusterLayout(Path(workdir), 1, free_port())
        bootstrap = local_broker.up(layout, timeout=300)
        try:
            produced, consumed = [], []
            for run in range(args.repeats):
                topics = Topics(f"bench{run}-")
                create_topics(bootstrap, topics, partitions=4, replication=1)
                produced.append(produce_rate(bootstrap, topics.outcome_events, payloads))
                consumed.append(consume_rate(bootstrap, topics.outcome_events, len(payloads)))
        finally:
            local_broker.down(layout)
    rows.append(
        (
            f"produce, confluent-kafka, one process ({size:.0f}-byte JSON, "
            f"{args.events:,} events, median of {args.repeats})",
            f"{statistics.median(produced):,.0f} msg/s",
        )
    )
    rows.append(
        (
            "consume + orjson parse, confluent-kafka, one process (same)",
            f"{statistics.median(consumed):,.0f} msg/s",
        )
    )

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Kafka {local_broker.KAFKA_VERSION}"
    )
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
