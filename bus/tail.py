"""Follows whole topics from their beginning in a background thread, without a consumer group."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from bus.clients import ConsumerOptions, make_consumer, watermark_offsets
from bus.records import Record

log = logging.getLogger(__name__)

T = TypeVar("T")

Apply = Callable[[str, bytes | None, bytes | None], None]
Decode = Callable[
    [str, bytes | None], T
]  # (topic, value) -> what the view reads; raise: unreadable


def raw(_topic: str, value: bytes | None) -> Any:
    return value


class TopicTail(threading.Thread, Generic[T]):
    """Hands every record of `topics` (all partitions, from the beginning) to a callback.

    New code passes `decode` (e.g. a contract model's parser) and `on_record`, which gets a
    `Record` with the decoded value; the older form `apply(topic, key, raw value)` is what
    streams' views pass. A record that cannot be decoded or applied is logged and skipped: one
    bad record must not end the view. Each topic is followed from the moment it exists.

    `caught_up` turns True once every record that was on the topics when they were first seen
    has been applied: until then what the callback built may be stale. The metadata request
    made every `probe_interval` while a topic is missing, then every `refresh_interval` (new
    partitions), doubles as a reachability probe (`brokers`, `probe_error`).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: list[str],
        apply: Apply | None = None,
        name: str = "tail",
        *,
        on_record: Callable[[Record[T]], None] | None = None,
        decode: Decode[T] = raw,
        probe_interval: float = 1.0,
        refresh_interval: float = 10.0,
        probe_timeout: float = 5.0,
        poll_timeout: float = 0.2,
    ) -> None:
        super().__init__(name=name, daemon=True)
        if (apply is None) == (on_record is None):
            raise ValueError("give a TopicTail either apply or on_record")
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self._apply = apply
        self._on_record = on_record or self._apply_raw
        self._decode = decode
        self._probe_interval = probe_interval
        self._refresh_interval = refresh_interval
        self._probe_timeout = probe_timeout
        self._poll_timeout = poll_timeout
        self.caught_up = False
        # True while the cluster answers that a topic does not exist: nothing to catch up on yet
        self.topics_missing = False
        self.records = 0
        self.brokers: int | None = None  # None until the first probe answers or fails
        self.probe_error: str | None = None
        self.last_probe: float | None = None  # wall time of the last answer
        self._ends: dict[tuple[str, int], int] = {}  # partition -> its end when first seen
        self._stop_event = threading.Event()

    def _apply_raw(self, record: Record[Any]) -> None:
        assert self._apply is not None
        self._apply(record.topic, record.key, record.value)

    @property
    def assigned(self) -> frozenset[tuple[str, int]]:
        return frozenset(self._ends)

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        consumer = make_consumer(
            self.bootstrap_servers,
            f"relearn-tail-{uuid.uuid4()}",  # librdkafka wants one even to assign; never used
            ConsumerOptions(auto_commit=False, fetch_wait_max_ms=50, quiet=True),
        )
        next_probe = 0.0
        try:
            while not self._stop_event.is_set():
                if time.monotonic() >= next_probe:
                    self._probe(consumer)
                    waiting = self.topics_missing or not self._ends
                    interval = self._probe_interval if waiting else self._refresh_interval
                    next_probe = time.monotonic() + interval
                if not self._ends:
                    self._stop_event.wait(self._poll_timeout)
                    continue
                # poll, then drain: consume(n, timeout) would hold a lone record until n came
                # or the timeout passed (up to poll_timeout late); poll returns it at once.
                first = consumer.poll(self._poll_timeout)
                if first is not None:
                    self._take(first)
                    for message in consumer.consume(5_000, timeout=0):
                        self._take(message)
                if not self.caught_up and not self.topics_missing:
                    self._check_caught_up(consumer)
        except Exception:  # noqa: BLE001 - a dead tail must at least be visible
            log.exception("%s stopped", self.name)
            raise
        finally:
            consumer.close()

    def _probe(self, consumer: Consumer) -> None:
        """Ask for the cluster's metadata; assign, from the beginning, partitions not seen yet.
        Failures are retried at the next probe: a tail that gave up would leave its view stale
        for the rest of the process's life."""
        try:
            metadata = consumer.list_topics(timeout=self._probe_timeout)
        except Exception as exc:  # noqa: BLE001 - the broker may be down or electing
            self.brokers, self.probe_error = 0, str(exc)
            log.info("%s: no answer from %s yet (%s)", self.name, self.bootstrap_servers, exc)
            return
        self.brokers, self.probe_error, self.last_probe = len(metadata.brokers), None, time.time()
        found: list[TopicPartition] = []
        missing = []
        for topic in self.topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                missing.append(topic)
                continue
            found.extend(
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for partition in sorted(described.partitions)
                if (topic, partition) not in self._ends
            )
        if missing and not self.topics_missing:
            log.info("%s: waiting for topics %s to exist", self.name, missing)
        self.topics_missing = bool(missing)
        if not found:
            return
        try:
            ends = {
                (tp.topic, tp.partition): watermark_offsets(consumer, tp, deadline_seconds=10)[1]
                for tp in found
            }
            consumer.incremental_assign(found)
        except Exception as exc:  # noqa: BLE001 - retried at the next probe
            log.warning("%s: cannot start following %s yet (%s)", self.name, self.topics, exc)
            return
        self._ends.update(ends)
        log.info("%s follows %s", self.name, ", ".join(f"{t}[{p}]" for t, p in sorted(ends)))

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: read error %s", self.name, error)
            return
        topic = message.topic() or ""
        try:
            value = self._decode(topic, message.value())
        except Exception as exc:  # noqa: BLE001 - an unreadable record is skipped, not fatal
            log.warning(
                "%s: unreadable record skipped topic=%s partition=%s offset=%s: %s",
                self.name,
                topic,
                message.partition(),
                message.offset(),
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            return
        try:
            self._on_record(Record.of(message, value))
        except Exception:  # noqa: BLE001 - one record the view cannot apply must not end it
            log.exception(
                "%s: record skipped topic=%s partition=%s offset=%s",
                self.name,
                topic,
                message.partition(),
                message.offset(),
            )
        self.records += 1

    def _check_caught_up(self, consumer: Consumer) -> None:
        positions = consumer.position([TopicPartition(t, p) for (t, p) in self._ends])
        if all(
            tp.offset >= self._ends[(tp.topic, tp.partition)]
            or self._ends[(tp.topic, tp.partition)] == 0
            for tp in positions
        ):
            self.caught_up = True
            log.info("%s: caught up after %d records", self.name, self.records)
