"""Two registry instances on one PostgreSQL database: their outbox rows reach the topic once each,
in commit order (found by tests/e2e/test_scale_out.py: a version_registered published twice)."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from bus.clients import make_producer
from contracts.topics import TopicName, Topics
from registry.metrics import RegistryMetrics
from registry.outbox import OutboxPublisher
from registry.store import open_store
from tests.registry.conftest import fresh_postgres_database
from tests.streams.harness import read_topic

pytestmark = pytest.mark.integration

ROWS = 600


def test_two_instances_publish_each_outbox_row_once_in_commit_order(
    postgres_server: str, kafka_bootstrap: str, topics: Topics
) -> None:
    url = fresh_postgres_database(postgres_server)
    stores = [open_store(url), open_store(url)]
    publishers = [
        # a long interval: each publishes when its own writes wake it, as in the registry
        OutboxPublisher(store, make_producer(kafka_bootstrap), topics, RegistryMetrics(), 1.0)
        for store in stores
    ]
    for publisher in publishers:
        publisher.start()
    try:
        # Both instances commit rows (one model type each, as the consumer groups split them)
        # and wake their own publisher, as every committed change does.
        def write(index: int) -> None:
            for n in range(ROWS // 2):
                payload = orjson.dumps({"instance": index, "n": n})
                stores[index].enqueue(f"type_{index}", TopicName.REGISTRY_EVENTS, payload)
                publishers[index].wake()
                time.sleep(0.002)

        writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        deadline = time.monotonic() + 30
        while any(store.unsent_events() for store in stores) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for publisher in publishers:
            publisher.stop()
        for store in stores:
            store.close()

    published = [
        orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.registry_events)
    ]
    for index in range(2):
        mine = [p["n"] for p in published if p["instance"] == index]
        # once each, and in commit order (each instance's rows share a key, so a partition)
        assert mine == list(range(ROWS // 2)), f"instance {index}: {_repeats(mine)}"


def _repeats(numbers: list[int]) -> str:
    seen: set[int] = set()
    twice = [n for n in numbers if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    return f"{len(numbers)} published, {len(twice)} twice (e.g. {twice[:5]})"
