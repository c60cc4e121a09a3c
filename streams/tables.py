"""The streams worker's tables: one set per source partition, each backed by a changelog topic.

The dedupe window lives on disk (RocksDB with a TTL of at least the window); the small tables
(rejection counts, model-type state, daily performance) are dicts. Every write also goes to a
changelog topic partitioned like the source, so a worker that gains a partition rebuilds its
tables from there. Writes are idempotent (see `streams.processing`), so restoring more of a
changelog than needed, or replaying source messages already applied, changes nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, TopicPartition
from rocksdict import BlockBasedOptions, Options, Rdict, WriteBatch

from bus.clients import watermark_offsets
from streams import values
from streams.values import FirstSeen

log = logging.getLogger(__name__)

SEEN = "seen-event-ids"
REJECTIONS = "rejections"
MODEL_TYPES = "model-types"
PERFORMANCE = "daily-performance"
# Tables keyed like outcome-events, and like training-samples.
OUTCOME_TABLES = (SEEN, REJECTIONS)
SAMPLE_TABLES = (MODEL_TYPES, PERFORMANCE)
SMALL_TABLES = (REJECTIONS, MODEL_TYPES, PERFORMANCE)
# How each small table's values are stored (`streams.values`); the same for its changelog, its
# restore and the web views that follow it.
CODECS: dict[str, values.Codec[Any]] = {
    REJECTIONS: values.REJECTION_COUNT,
    MODEL_TYPES: values.JSON,
    PERFORMANCE: values.DAY_PERFORMANCE,
}

V = TypeVar("V")


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


class TableStore(Protocol):
    """One partition of a table, as the runtime sees it: the batch's changes go out to the
    changelog (`take_changed`), a restore feeds it the changelog back (`restore_batch`) from
    `checkpoint` on. Reads and writes are the table's own (`streams.processing` uses them)."""

    def take_changed(self) -> Iterable[tuple[bytes, bytes]]: ...

    def restore_batch(self, records: list[tuple[bytes, bytes | None]]) -> None: ...

    @property
    def checkpoint(self) -> int: ...

    def set_checkpoint(self, offset: int) -> None: ...

    def close(self) -> None: ...


class ChangelogTable(dict[str, V], Generic[V]):
    """One partition of a small table, in memory: a dict of typed values (`codec` writes and
    reads their changelog records) that remembers which keys changed since the last
    `take_changed`, so each changed key is written to the changelog once per batch. Nothing is
    kept locally, so a restore reads its whole changelog (checkpoint 0)."""

    checkpoint = 0

    def __init__(self, codec: values.Codec[V]) -> None:
        super().__init__()
        self.codec = codec
        self.changed: set[str] = set()

    @classmethod
    def of(cls, name: str) -> ChangelogTable[Any]:
        """An empty partition of the small table `name`, with its codec."""
        return ChangelogTable(CODECS[name])

    def __setitem__(self, key: str, value: V) -> None:
        super().__setitem__(key, value)
        self.changed.add(key)

    def take_changed(self) -> Iterator[tuple[bytes, bytes]]:
        changed, self.changed = self.changed, set()
        encode = self.codec.encode
        for key in changed:
            yield key.encode(), encode(self[key])

    def restore(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.pop(key.decode(), None)
        else:
            super().__setitem__(key.decode(), self.codec.decode(value))

    def restore_batch(self, records: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            self.restore(key, value)

    def set_checkpoint(self, offset: int) -> None:
        """Nothing to remember: the memory is gone with the process."""

    def close(self) -> None:
        """Nothing to release."""


class SeenEventIds:
    """One partition of the dedupe window in RocksDB: event_id -> where first seen
    (`values.FirstSeen`, stored by `values.FIRST_SEEN`); restores resume from its on-disk
    `checkpoint`.

    On disk in RocksDB, one database per window-long time bucket: writes go to the current
    bucket, lookups read the current and the previous one, older buckets are deleted whole.
    So an id stays at least one window (at most two) and disk stays bounded. (RocksDB's own TTL
    mode is not used: through rocksdict, a database reopened with a TTL lost every record at its
    next compaction - `tests/streams/test_tables.py` keeps that in view.)
    """

    def __init__(
        self, path: Path, window_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.window = max(1, int(window_seconds))
        self.clock = clock
        self.buckets: dict[int, Rdict] = {}
        self.unwritten: dict[bytes, bytes] = {}  # this batch's sightings
        self._roll()

    @staticmethod
    def _options() -> Options:
        options = Options(raw_mode=True)
        # Almost every lookup is for a new event_id: a bloom filter answers those without
        # reading the table files (0.7 us instead of 3.7 us per lookup at 400,000 ids).
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        return options

    def _roll(self) -> None:
        """Open the current and previous buckets; delete older ones."""
        current = int(self.clock() // self.window)
        for number in (current - 1, current):
            if number not in self.buckets:
                self.buckets[number] = Rdict(str(self.path / f"bucket-{number}"), self._options())
        for number in [n for n in self.buckets if n < current - 1]:
            self.buckets.pop(number).close()
        for directory in self.path.glob("bucket-*"):
            number = int(directory.name.removeprefix("bucket-"))
            if number < current - 1:
                shutil.rmtree(directory, ignore_errors=True)
        self.current = current

    def get(self, event_id: str) -> FirstSeen | None:
        key = event_id.encode()
        raw = self.unwritten.get(key)
        if raw is None:
            raw = self.buckets[self.current].get(key)
            if raw is None:
                raw = self.buckets[self.current - 1].get(key)
                if raw is None:
                    return None
        return values.FIRST_SEEN.decode(raw)

    def __setitem__(self, event_id: str, first_seen: FirstSeen) -> None:
        self.unwritten[event_id.encode()] = values.FIRST_SEEN.encode(first_seen)

    def take_changed(self) -> list[tuple[bytes, bytes]]:
        """Write the batch's new sightings to disk (one RocksDB write) and return them for the
        changelog. On disk before the changelog is harmless: a replayed message finds its own
        position, so it counts as a replay, not as a duplicate."""
        if not self.unwritten:
            return []
        self._write(self.unwritten.items())
        written, self.unwritten = list(self.unwritten.items()), {}
        return written

    def _write(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        if int(self.clock() // self.window) != self.current:
            self._roll()
        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.buckets[self.current].write(batch)

    @property
    def checkpoint(self) -> int:
        """The changelog offset up to which this store already holds the changelog's records."""
        try:
            return int((self.path / "checkpoint").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def set_checkpoint(self, offset: int) -> None:
        temporary = self.path / "checkpoint.tmp"
        temporary.write_text(str(offset))
        temporary.replace(self.path / "checkpoint")

    def restore_batch(self, records: list[tuple[bytes, bytes | None]]) -> None:
        # Restored ids go to the current bucket: kept at least a window from now, which is
        # longer than the changelog's own retention (one window).
        self._write(records)

    def close(self) -> None:
        for db in self.buckets.values():
            db.close()
        self.buckets.clear()


def read_changelog(
    consumer: Consumer,
    topic: str,
    partition: int,
    start: int,
    apply: Callable[[list[tuple[bytes, bytes | None]]], None],
    timeout: float = 300.0,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Apply the records of one changelog partition from `start` to its current end.

    Returns the end offset reached (the next offset to read next time). `progress` is told the
    next offset after every applied batch: a restore cut short (a crash, the timeout) resumes
    from there instead of from `start`.
    """
    tp = TopicPartition(topic, partition)
    # a changelog partition whose broker was just killed can take a while to get a leader;
    # waiting stays under max.poll.interval.ms (300 s), or the group would drop this worker
    low, high = watermark_offsets(consumer, tp, deadline_seconds=240.0)
    start = max(start, low)
    if start >= high:
        return high
    consumer.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + timeout
    restored = 0
    try:
        while time.monotonic() < deadline:
            records: list[tuple[bytes, bytes | None]] = []
            last = -1
            # consume() waits out its timeout unless the batch fills: keep it short.
            for message in consumer.consume(10_000, timeout=0.05):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("changelog %s[%d] read error: %s", topic, partition, error)
                    continue
                records.append((message.key() or b"", message.value()))
                last = int(message.offset() or 0)
            if records:
                apply(records)
                restored += len(records)
                if progress is not None:
                    progress(last + 1)
            position = consumer.position([TopicPartition(topic, partition)])[0].offset
            if last >= high - 1 or position >= high:
                log.info(
                    "restored %s[%d]: %d records, offsets %d..%d",
                    topic,
                    partition,
                    restored,
                    start,
                    high,
                )
                return high
        raise TimeoutError(f"restoring {topic}[{partition}] did not reach offset {high}")
    finally:
        consumer.unassign()
