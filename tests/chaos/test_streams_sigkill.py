"""Priority 1: a streams worker SIGKILLed during traffic, its local state kept or deleted.

tests/streams proves the tables on a lean run; here the sizes are the issue's (CI reduced), the
state is also deleted (recovery from the changelog alone), and every recovery is timed.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.clients import make_producer
from contracts.topics import Topics
from streams.testing import MODEL_TYPES, GroundTruth, outcome_events
from tests.chaos.harness import ScenarioFigures, elapsed_since, forwarded_ids, size
from tests.streams.harness import StreamsWorker, get_json, wait_until
from tests.streams.test_streams_on_broker import (
    THRESHOLD,
    _all_counted,
    _assert_outputs,
    _assert_tables_equal_truth,
    _workers,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(size(600, 3_600)))]


def counted_twice(worker: StreamsWorker, truth: GroundTruth) -> int:
    """Events the tables hold beyond the ground truth (both the sample count and daily rows)."""
    extra = 0
    for model_type in MODEL_TYPES:
        view = get_json(f"{worker.url}/samples/{model_type}")
        extra += max(
            0,
            view["retrain_commands"] * THRESHOLD + view["new_samples"] - truth.per_type[model_type],
        )
        rows = get_json(f"{worker.url}/performance/{model_type}?days=7")
        extra += max(
            0,
            sum(r["sample_count"] for r in rows)
            - sum(d.sample_count for k, d in truth.daily.items() if k[0] == model_type),
        )
    return extra


def counted(worker: StreamsWorker) -> int:
    """Events the worker's sample counters hold now (0 while it does not answer)."""
    total = 0
    for model_type in MODEL_TYPES:
        view = get_json(f"{worker.url}/samples/{model_type}")
        if view is None:
            return 0
        total += view["retrain_commands"] * THRESHOLD + view["new_samples"]
    return total


def recovered(
    worker: StreamsWorker, before: int, producer: threading.Thread, truth: GroundTruth
) -> bool:
    """The restarted worker holds partitions again and counts beyond what was counted at the
    kill (or, once the producer has finished, has counted everything: nothing is left to count)."""
    health = get_json(f"{worker.url}/healthz") or {}
    if not any(health.get("assigned", {}).values()):
        return False
    return counted(worker) > before or (not producer.is_alive() and _all_counted(worker, truth))


class PacedProducer(threading.Thread):
    """Sends `messages` at `rate` per second (one idempotent producer); `sent` counts them."""

    def __init__(
        self, bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], rate: float
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.messages, self.rate = bootstrap, topic, messages, rate
        self.sent = 0

    def run(self) -> None:
        producer = make_producer(self.bootstrap, **{"linger.ms": 20, "batch.num.messages": 10_000})
        chunk = max(1, int(self.rate / 10))
        began = time.monotonic()
        for index, start in enumerate(range(0, len(self.messages), chunk)):
            for key, value in self.messages[start : start + chunk]:
                while True:
                    try:
                        producer.produce(self.topic, key=key, value=value)
                        break
                    except BufferError:
                        producer.poll(0.05)
                self.sent += 1
            producer.poll(0)
            # paced against the start, so a slow moment is caught up rather than carried on
            time.sleep(max(0.0, began + (index + 1) * 0.1 - time.monotonic()))
        assert producer.flush(120) == 0, "the paced producer could not deliver everything"


def produce_at_rate(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], rate: float
) -> PacedProducer:
    producer = PacedProducer(bootstrap, topic, messages, rate)
    producer.start()
    return producer


@pytest.mark.scenario("1 streams SIGKILL, state {state}")
@pytest.mark.parametrize("state", ["kept", "deleted"])
def test_streams_worker_sigkilled_during_traffic(
    state: str,
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    events = int(size(100_000, 1_000_000))
    kills = int(size(3, 5))
    rate = float(size(2_500, 5_000))
    messages, truth = outcome_events(events, seed=23)
    (worker,) = _workers(kafka_bootstrap, topic_prefix, tmp_path, 1)
    rng = random.Random(3)
    recoveries: list[float] = []
    try:
        worker.start()
        worker.wait_web()
        producer = produce_at_rate(kafka_bootstrap, topics.outcome_events, messages, rate)
        for kill in range(kills):
            # a random moment while events flow: around each (kill+1)/(kills+1) of the traffic
            mark = int(len(messages) * (kill + rng.uniform(0.6, 1.2)) / (kills + 1))
            wait_until(
                lambda m=mark: producer.sent >= m or not producer.is_alive(),
                len(messages) / rate * 3 + 60,
                "the producer stalled",
            )
            before = counted(worker)
            worker.kill()
            killed = time.monotonic()
            if state == "deleted":
                shutil.rmtree(worker.data_dir, ignore_errors=True)
            worker.start()
            worker.wait_web(timeout=120)
            wait_until(
                lambda b=before: recovered(worker, b, producer, truth),
                60,
                "no progress after the restart",
            )
            recoveries.append(elapsed_since(killed))
        producer.join()
        caught_up = time.monotonic()
        wait_until(
            lambda: _all_counted(worker, truth), max(180, events / 150), "events not all counted"
        )
        catch_up = elapsed_since(caught_up)
        ids = forwarded_ids(kafka_bootstrap, topics.training_samples, truth.valid_ids)
        assert (ids.lost, ids.duplicated, ids.unexpected) == (0, 0, 0), ids
        assert counted_twice(worker, truth) == 0
        _assert_tables_equal_truth(worker, truth)
        _assert_outputs(kafka_bootstrap, topics, truth)
        assert max(recoveries) < 60, recoveries
        record_row(
            ScenarioFigures(
                len(messages),
                f"{kills} x SIGKILL worker",
                ids.lost,
                ids.duplicated,
                max(recoveries),
                notes=(
                    f"recoveries {recoveries} s; caught up {catch_up} s after the last event; "
                    f"tables equal the truth; training-samples re-sent {ids.resent} "
                    "(same source record: at least once, counted once)"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        worker.stop()
