"""Priority 1: a streams worker SIGKILLed during traffic, its local state kept or deleted.

tests/streams proves the tables on a lean run; here the sizes are the issue's (CI reduced), the
state is also deleted (recovery from the changelog alone), and every recovery is timed.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from contracts.topics import Topics
from streams.testing import MODEL_TYPES, GroundTruth, outcome_events
from tests.chaos.harness import ScenarioFigures, elapsed_since, record, size
from tests.streams.harness import StreamsWorker, get_json, produce, read_topic, wait_until
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
        extra += max(0, view["retrain_commands"] * THRESHOLD + view["new_samples"]
                     - truth.per_type[model_type])
        rows = get_json(f"{worker.url}/performance/{model_type}?days=7")
        extra += max(0, sum(r["sample_count"] for r in rows)
                     - sum(d.sample_count for k, d in truth.daily.items() if k[0] == model_type))
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


def produce_at_rate(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]],
                    rate: float) -> threading.Thread:
    def run() -> None:
        chunk = max(1, int(rate / 10))
        for start in range(0, len(messages), chunk):
            began = time.monotonic()
            produce(bootstrap, topic, messages[start:start + chunk])
            time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("state", ["kept", "deleted"])
def test_streams_worker_sigkilled_during_traffic(
    state: str, kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    events = int(size(12_000, 1_000_000))
    kills = int(size(3, 5))
    rate = float(size(3_000, 5_000))
    messages, truth = outcome_events(events, seed=23)
    (worker,) = _workers(kafka_bootstrap, topic_prefix, tmp_path, 1)
    rng = random.Random(3)
    recoveries: list[float] = []
    try:
        worker.start()
        worker.wait_web()
        producer = produce_at_rate(kafka_bootstrap, topics.outcome_events, messages, rate)
        spacing = len(messages) / rate / (kills + 1)
        for _ in range(kills):
            time.sleep(rng.uniform(0.5, 1.0) * spacing)  # a random moment while events flow
            before = counted(worker)
            worker.kill()
            killed = time.monotonic()
            if state == "deleted":
                shutil.rmtree(worker.data_dir, ignore_errors=True)
            worker.start()
            worker.wait_web(timeout=120)
            # recovered = the restarted worker counts beyond what it had counted at the kill
            wait_until(lambda b=before: counted(worker) > b, 60, "no progress after the restart")
            recoveries.append(elapsed_since(killed))
        producer.join()
        caught_up = time.monotonic()
        wait_until(lambda: _all_counted(worker, truth), max(180, events / 150),
                   "events not all counted")
        catch_up = elapsed_since(caught_up)
        samples = read_topic(kafka_bootstrap, topics.training_samples)
        forwarded = Counter(orjson.loads(m.value())["event_id"] for m in samples)
        lost = len(truth.valid_ids - set(forwarded))
        doubled = counted_twice(worker, truth)
        record(ScenarioFigures(
            f"1 streams SIGKILL, state {state}", len(messages), f"{kills} x SIGKILL worker",
            lost, doubled, max(recoveries),
            notes=(f"recoveries {recoveries} s (kill to counting beyond the pre-kill count); caught up {catch_up} s after "
                   f"the last event; training-samples re-sent {len(samples) - len(forwarded)} "
                   f"(at least once, unique by event_id)"),
            seconds=elapsed_since(began)))
        assert lost == 0 and doubled == 0
        _assert_tables_equal_truth(worker, truth)
        _assert_outputs(kafka_bootstrap, topics, truth)
        assert max(recoveries) < 60, recoveries
    finally:
        worker.stop()
