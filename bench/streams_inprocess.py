"""Per-event costs of the streams hot path, in-process (no broker): parse, dedupe, forward, count.

Each row times one function of streams/ or contracts/ on the same synthetic events the throughput
bench uses (`streams.testing.outcome_events`), as the worker calls it: median over rounds of the
mean microseconds per call. The produce rows time librdkafka's `produce()` into the local queue
of a producer whose broker is unreachable, so they measure the call, not the network.

    .venv/bin/python bench/streams_inprocess.py [--events 20000] [--rounds 7] [--ids 400000]
    .venv/bin/python bench/streams_inprocess.py --quick      # a few seconds, to check it runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rocksdict import Options, Rdict  # noqa: E402

from bus.clients import make_producer  # noqa: E402
from contracts.events import TrainingSampleForwarded, to_json  # noqa: E402
from contracts.model_types import ModelTypeCatalog  # noqa: E402
from contracts.serving import Status  # noqa: E402
from contracts.validation import validate_outcome  # noqa: E402
from streams import processing  # noqa: E402
from streams.registry_view import ModelTypeView  # noqa: E402
from streams.tables import SeenEventIds  # noqa: E402
from streams.testing import outcome_events  # noqa: E402
from streams.values import FirstSeen  # noqa: E402

BATCH = 5_000  # the worker's batch size: the dedupe store writes once per batch
RULES = processing.StreamRules(
    retrain_sample_threshold=1000,
    retrain_max_age_seconds=7 * 86_400.0,
)


def per_call_us(
    run: Callable[[Any], int], rounds: int, prepare: Callable[[], Any] = lambda: None
) -> float:
    """Median over rounds of (round time / calls in the round), in microseconds; `prepare`
    runs untimed before each round and hands `run` what it built."""
    values = []
    for _ in range(rounds):
        prepared = prepare()
        started = time.perf_counter_ns()
        calls = run(prepared)
        values.append((time.perf_counter_ns() - started) / 1000 / calls)
    return statistics.median(values)


def main() -> int:  # noqa: C901 - a linear script of measurements, one branch per option
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ids", type=int, default=400_000, help="ids in the dedupe store")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds, args.ids = 2_000, 2, 20_000

    now = datetime.now(UTC)
    messages, _truth = outcome_events(args.events, seed=3, duplicate_rate=0, invalid_rate=0)
    values = [value for _key, value in messages]
    catalog = ModelTypeCatalog()
    events = [validate_outcome(value, catalog, now) for value in values]
    forwards = [TrainingSampleForwarded.json_from_outcome(event) for event in events]
    rows: list[tuple[str, float]] = []

    def validate(_: Any) -> int:
        for value in values:
            validate_outcome(value, catalog, now)
        return len(values)

    rows.append(
        (
            "validate_outcome (pydantic parse + configured checks)",
            per_call_us(validate, args.rounds),
        )
    )

    def forward_orjson(_: Any) -> int:
        for event in events:
            TrainingSampleForwarded.json_from_outcome(event)
        return len(events)

    def forward_model(_: Any) -> int:
        for event in events:
            to_json(TrainingSampleForwarded.from_outcome(event))
        return len(events)

    rows.append(
        (
            "forwarded sample JSON, json_from_outcome (orjson)",
            per_call_us(forward_orjson, args.rounds),
        )
    )
    rows.append(
        (
            "forwarded sample JSON, to_json(from_outcome) (pydantic)",
            per_call_us(forward_model, args.rounds),
        )
    )

    with tempfile.TemporaryDirectory(prefix="bench-inprocess-") as tmp:
        window = 86_400
        stores: list[SeenEventIds] = []

        def new_store() -> SeenEventIds:
            # a fresh store per round, so every event is new (the common case)
            stores.append(SeenEventIds(Path(tmp) / f"seen-{len(stores)}", window))
            return stores[-1]

        def handle_outcomes(store: SeenEventIds) -> int:
            rejections: dict[str, Any] = {}
            for offset, value in enumerate(values):
                processing.handle_outcome(value, 0, offset, store, rejections, catalog, now)
                if offset % BATCH == BATCH - 1:
                    store.take_changed()
            store.take_changed()
            return len(values)

        rows.append(
            (
                "handle_outcome (validate, RocksDB dedupe, forward JSON; a write per 5,000)",
                per_call_us(handle_outcomes, args.rounds, new_store),
            )
        )

        def samples(view: ModelTypeView | None) -> Callable[[], int]:
            views = (
                {} if view is None else dict.fromkeys(("calling_score", "outcome_prediction"), view)
            )

            def run(_: Any) -> int:
                states: dict[str, Any] = {}
                performance: dict[str, Any] = {}
                for offset, forward in enumerate(forwards):
                    processing.handle_sample(
                        forward, 0, offset, states, performance, views, RULES, now.timestamp()
                    )
                return len(forwards)

            return run

        canary = ModelTypeView(
            model_type="outcome_prediction",
            statuses={"v1.0": Status.PRODUCTION, "v1.1": Status.STAGING},
            weights={"v1.0": 0.9, "v1.1": 0.1},
            changed_at=now - timedelta(days=30),
        )
        rows.append(
            (
                "handle_sample (parse, count, daily performance), no A/B test",
                per_call_us(samples(None), args.rounds),
            )
        )
        rows.append(
            (
                "handle_sample, A/B test running (v1.0 vs v1.1)",
                per_call_us(samples(canary), args.rounds),
            )
        )

        lookups = [f"unseen-{i}" for i in range(args.events)]
        store = SeenEventIds(Path(tmp) / "lookup", window)
        plain = Rdict(str(Path(tmp) / "plain"), Options(raw_mode=True))
        for start in range(0, args.ids, BATCH):
            for i in range(start, min(start + BATCH, args.ids)):
                store[f"seen-{i}"] = FirstSeen(0, i)
                plain[f"seen-{i}".encode()] = f"0:{i}".encode()
            store.take_changed()
        # Lookups read the table files, as in a worker that has run a while or reopened its
        # store (in the memtable the bloom filter plays no part).
        store.buckets[store.current].flush()
        plain.flush()

        def lookup_store(_: Any) -> int:
            for key in lookups:
                store.get(key)
            return len(lookups)

        def lookup_plain(_: Any) -> int:
            for key in lookups:
                plain.get(key.encode())
            return len(lookups)

        rows.append(
            (
                f"dedupe lookup of an unseen id, {args.ids:,} ids, SeenEventIds (bloom filter)",
                per_call_us(lookup_store, args.rounds),
            )
        )
        rows.append(
            (
                "same, one plain RocksDB without a bloom filter",
                per_call_us(lookup_plain, args.rounds),
            )
        )
        for opened in (*stores, store):
            opened.close()
        plain.close()

    producer = make_producer(
        "127.0.0.1:9", **{"queue.buffering.max.messages": 2_000_000, "log_level": 0}
    )
    headers = [("source.partition", b"3"), ("source.offset", b"123456")]

    def produce(with_headers: bool) -> Callable[[], int]:
        def run(_: Any) -> int:
            for forward in forwards:
                producer.produce(
                    "bench", forward, b"calling_score", headers=headers if with_headers else None
                )
            producer.purge()
            return len(forwards)

        return run

    rows.append(
        (
            "librdkafka produce() of a forwarded sample, no headers",
            per_call_us(produce(False), args.rounds),
        )
    )
    rows.append(("same, with the two source headers", per_call_us(produce(True), args.rounds)))
    producer.purge()
    producer.flush(0)

    print(
        f"streams per-event costs in-process: {args.events:,} events per round, median of "
        f"{args.rounds} rounds; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print()
    print_table(rows)
    return 0


def print_table(rows: Sequence[tuple[str, float]]) -> None:
    print("| per event | us |")
    print("|---|---:|")
    for name, micros in rows:
        print(f"| {name} | {micros:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
