"""The dedupe store on disk: kept across reopen and compaction, bounded by the window."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.admin import ensure_topics
from bus.clients import make_consumer, make_producer
from streams.tables import SeenEventIds, read_changelog
from streams.values import FirstSeen

WINDOW = 3_600


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def write(store: SeenEventIds, ids: range) -> None:
    for i in ids:
        store[f"id-{i}"] = FirstSeen(0, i)
    store.take_changed()


def test_ids_survive_reopen_and_compaction(tmp_path: Path) -> None:
    """rocksdict's TTL mode lost every record at the first compaction after a reopen; a worker
    that got its partition back then let old duplicates through (found by make chaos)."""
    clock = Clock(10 * WINDOW + 5)
    for round_ in range(4):
        store = SeenEventIds(tmp_path / "dedupe-0", WINDOW, clock)
        write(store, range(round_ * 5_000, (round_ + 1) * 5_000))
        store.set_checkpoint((round_ + 1) * 5_000)
        for db in store.buckets.values():
            db.flush()
        store.close()
    store = SeenEventIds(tmp_path / "dedupe-0", WINDOW, clock)
    for db in store.buckets.values():
        db.compact_range(None, None)
    assert all(store.get(f"id-{i}") == FirstSeen(0, i) for i in range(0, 20_000, 7))
    assert store.get("never-seen") is None
    assert store.checkpoint == 20_000


def test_an_id_is_kept_at_least_one_window_and_then_dropped(tmp_path: Path) -> None:
    clock = Clock(10 * WINDOW + WINDOW - 1)  # the last second of a bucket
    store = SeenEventIds(tmp_path / "dedupe-0", WINDOW, clock)
    write(store, range(3))
    clock.now += WINDOW  # a whole window later: still a duplicate
    write(store, range(10, 11))
    assert store.get("id-0") == FirstSeen(0, 0)
    clock.now += WINDOW + 1  # more than two buckets later: forgotten, and gone from disk
    write(store, range(20, 21))
    assert store.get("id-0") is None
    assert store.get("id-20") == FirstSeen(0, 20)
    assert len(list((tmp_path / "dedupe-0").glob("bucket-*"))) == 2
    store.close()


def test_restored_records_are_found_and_a_batch_reads_its_own_writes(tmp_path: Path) -> None:
    store = SeenEventIds(tmp_path / "dedupe-1", WINDOW)
    store.restore_batch([(b"a", b"1:5"), (b"b", b"1:6")])
    store["c"] = FirstSeen(1, 7)
    assert (store.get("a"), store.get("c")) == (FirstSeen(1, 5), FirstSeen(1, 7))
    assert store.take_changed() == [(b"c", b"1:7")]
    store.close()


def test_a_restore_cut_short_resumes_where_its_progress_says(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A restore of a long changelog that crashes (or times out) half-way used to start again
    from the beginning every time; with progress it resumes."""
    topic = f"{topic_prefix}changelog"
    ensure_topics(kafka_bootstrap, {topic: {"cleanup.policy": "compact"}}, 1, 1)
    producer = make_producer(kafka_bootstrap)
    for i in range(25_000):
        producer.produce(topic, b"%d:%d" % (0, i), f"id-{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    consumer = make_consumer(kafka_bootstrap, f"restore-{topic_prefix}")
    checkpoints: list[int] = []
    first: list[bytes] = []

    def crashes_after_two_batches(records: list[tuple[bytes, bytes | None]]) -> None:
        if len(checkpoints) == 2:
            raise RuntimeError("crash during restore")
        first.extend(key for key, _ in records)

    try:
        with pytest.raises(RuntimeError):
            read_changelog(
                consumer, topic, 0, 0, crashes_after_two_batches, progress=checkpoints.append
            )
        assert 0 < checkpoints[-1] == len(first) < 25_000
        rest: list[bytes] = []
        end = read_changelog(
            consumer, topic, 0, checkpoints[-1], lambda r: rest.extend(k for k, _ in r)
        )
    finally:
        consumer.close()
    assert end == 25_000
    assert len(rest) == 25_000 - checkpoints[-1]
    assert set(first) | set(rest) == {f"id-{i}".encode() for i in range(25_000)}
