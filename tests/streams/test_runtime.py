"""The runtime's parts one at a time: table stores, changelog write and restore, the committer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus.clients import (
    ConsumerOptions,
    ProducerOptions,
    consumer_config,
    make_consumer,
    producer_config,
)
from contracts.topics import Topics
from streams import tables
from streams.changelog import Changelogs, ChangelogWriter
from streams.committer import Committer
from streams.partitions import OwnedTables
from streams.rules import DailyPerformance
from streams.sender import Sender
from streams.settings import StreamsSettings
from streams.values import DayPerformance, FirstSeen, RejectionCount
from tests.streams.harness import committed_offsets, produce

WINDOW = 3_600


def memory_store(_path: Path) -> tables.ChangelogTable[RejectionCount]:
    return tables.ChangelogTable.of(tables.REJECTIONS)


def rocksdb_store(path: Path) -> tables.SeenEventIds:
    return tables.SeenEventIds(path, WINDOW)


def put(store: Any, i: int) -> None:
    if isinstance(store, tables.SeenEventIds):
        store[f"id-{i}"] = FirstSeen(0, i)
    else:
        store[f"id-{i}"] = RejectionCount(1, i)


def read(store: Any, i: int) -> Any:
    found = store.get(f"id-{i}")
    return found.offset if found else None


STORES = [pytest.param(memory_store, id="memory"), pytest.param(rocksdb_store, id="rocksdb")]


@pytest.mark.parametrize("make", STORES)
def test_a_store_hands_each_change_out_once_and_restores_from_its_changelog(
    make: Callable[[Path], Any], tmp_path: Path
) -> None:
    store: tables.TableStore = make(tmp_path / "a")
    for i in (1, 2, 2, 3):
        put(store, i)
    changed = sorted(store.take_changed())
    assert [key for key, _ in changed] == [b"id-1", b"id-2", b"id-3"]
    assert list(store.take_changed()) == []  # handed out once

    restored: tables.TableStore = make(tmp_path / "b")
    restored.restore_batch([*changed, (b"id-9", None)])
    assert [read(restored, i) for i in (1, 2, 3, 4)] == [1, 2, 3, None]
    assert list(restored.take_changed()) == []  # a restore is no change to write again
    store.close()
    restored.close()


def test_only_the_rocksdb_store_keeps_a_checkpoint(tmp_path: Path) -> None:
    memory = tables.ChangelogTable.of(tables.MODEL_TYPES)
    memory.set_checkpoint(42)
    assert memory.checkpoint == 0  # nothing local survives: restore the whole changelog
    disk = tables.SeenEventIds(tmp_path / "seen", WINDOW)
    disk.set_checkpoint(42)
    disk.close()
    assert tables.SeenEventIds(tmp_path / "seen", WINDOW).checkpoint == 42


def test_streams_consumer_options_reach_librdkafka_through_bus_clients() -> None:
    def on_error(_error: Any) -> None:
        pass

    config = consumer_config(
        "b:9092",
        "g",
        ConsumerOptions(
            auto_commit=False,
            assignment_strategy="cooperative-sticky",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            fetch_wait_max_ms=20,
            queued_max_messages_kbytes=65_536,
            error_cb=on_error,
        ),
    )
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["heartbeat.interval.ms"] == 2_000
    assert config["queued.max.messages.kbytes"] == 65_536
    assert config["fetch.wait.max.ms"] == 20
    assert config["error_cb"] is on_error
    assert config["enable.auto.commit"] is False
    assert "partition.assignment.strategy" not in consumer_config("b:9092", "g")


def test_streams_producer_options_reach_librdkafka_through_bus_clients() -> None:
    config = producer_config(
        "b:9092",
        ProducerOptions(
            batch_num_messages=10_000,
            queue_buffering_max_kbytes=1_048_576,
            message_timeout_ms=0,
            java_partitioner=True,
        ),
    )
    assert config["batch.num.messages"] == 10_000
    assert config["queue.buffering.max.kbytes"] == 1_048_576
    assert config["message.timeout.ms"] == 0
    assert config["partitioner"] == "murmur2_random"
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert "partitioner" not in producer_config("b:9092")


class Failures:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, why: str) -> None:
        self.seen.append(why)


def test_changelogs_written_by_one_owner_restore_the_next(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = StreamsSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    changelogs = Changelogs(settings.app_id, WINDOW)
    changelogs.ensure(settings)
    failures = Failures()
    sender = Sender(kafka_bootstrap, threading.Event(), failures, lambda error: None)
    committer = Committer(sender.flush, failures)
    writer = ChangelogWriter(changelogs, sender, committer.on_changelog_delivery, committer.refuse)
    owned = OwnedTables(changelogs, tmp_path / "first")
    owned.seen[1] = tables.SeenEventIds(tmp_path / "first" / "dedupe-1", WINDOW)
    owned.rejections[1] = tables.ChangelogTable.of(tables.REJECTIONS)
    owned.states[1] = tables.ChangelogTable.of(tables.MODEL_TYPES)
    owned.performance[1] = tables.ChangelogTable.of(tables.PERFORMANCE)
    for i in range(100):
        owned.seen[1][f"e{i}"] = FirstSeen(1, i)
    owned.rejections[1]["schema@1"] = RejectionCount(3, 40)
    day = DayPerformance(DailyPerformance(1, 1, 0.5, 0.25), {"o1": 7})
    owned.performance[1]["calling_score|2026-12-01|v1.0"] = day
    writer.write(owned.seen, owned.small(), commands_emitted=True)
    assert sender.flush() and not failures.seen and committer.commits_refused is None
    assert committer.delivered == {1: 99}  # the batch's last dedupe record, acknowledged
    owned.close()

    restorer = make_consumer(kafka_bootstrap, f"{settings.app_id}-restore", ConsumerOptions(False))
    try:
        restored = OwnedTables(changelogs, tmp_path / "second")
        restored.restore_outcome_partition(restorer, 1)
        restored.restore_sample_partition(restorer, 1)
    finally:
        restorer.close()
    assert restored.seen[1].get("e57") == FirstSeen(1, 57)
    assert restored.seen[1].checkpoint == 100
    assert dict(restored.rejections[1]) == {"schema@1": RejectionCount(3, 40)}
    assert dict(restored.performance[1]) == {"calling_score|2026-12-01|v1.0": day}
    assert dict(restored.states[1]) == {}
    restored.close()
    sender.close()


def test_the_committer_commits_after_a_flush_checkpoints_after_and_refuses_for_good(
    kafka_bootstrap: str, topics: Topics, group_id: str, tmp_path: Path
) -> None:
    produce(kafka_bootstrap, topics.outcome_events, [(b"k", b"v")] * 3)
    consumer = make_consumer(kafka_bootstrap, group_id, ConsumerOptions(auto_commit=False))
    store = tables.SeenEventIds(tmp_path / "dedupe-0", WINDOW)
    flushed: list[bool] = []

    def flush() -> bool:
        flushed.append(True)
        return len(flushed) != 2  # the second flush is cut short (stopping)

    failures = Failures()
    committer = Committer(flush, failures)
    committer.consumer = consumer
    try:
        position = (topics.outcome_events, 0)
        committer.positions[position] = 2
        committer.delivered[0] = 6
        committer.commit({0: store})
        assert committed_offsets(kafka_bootstrap, group_id, topics.outcome_events)[0] == 2
        assert store.checkpoint == 7 and committer.delivered == {}

        committer.positions[position] = 3
        committer.delivered[0] = 9
        committer.commit({0: store})  # the flush did not finish: nothing moves
        assert committed_offsets(kafka_bootstrap, group_id, topics.outcome_events)[0] == 2
        assert store.checkpoint == 7

        committer.refuse("a batch was cut short")
        committer.commit({0: store})
        assert committed_offsets(kafka_bootstrap, group_id, topics.outcome_events)[0] == 2
        assert store.checkpoint == 7 and len(flushed) == 2  # refused before flushing

        committer.forget([position], [0])
        assert committer.positions == {} and committer.delivered == {}
        assert not failures.seen
    finally:
        consumer.close()
        store.close()
