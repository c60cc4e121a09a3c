"""Follows whole topics from their beginning in a background thread, without a consumer group."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from bus.clients import make_consumer, watermark_offsets

log = logging.getLogger(__name__)

Apply = Callable[[str, bytes | None, bytes | None], None]


class TopicTail(threading.Thread):
    """Hands every record of `topics` (all partitions, from the beginning) to `apply`.

    `caught_up` turns True once every record that was on the topics when the tail started has
    been applied: until then what `apply` built may be stale.
    """

    def __init__(self, bootstrap_servers: str, topics: list[str], apply: Apply, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.apply = apply
        self.caught_up = False
        # True while the cluster answers that a topic does not exist: nothing to catch up on yet
        self.topics_missing = False
        self.records = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def _partitions(self, consumer: Consumer) -> list[TopicPartition]:
        while not self._stop_event.is_set():
            metadata = consumer.list_topics(timeout=10)
            found = [metadata.topics.get(topic) for topic in self.topics]
            if all(t is not None and t.error is None and t.partitions for t in found):
                self.topics_missing = False
                return [
                    TopicPartition(topic, partition, OFFSET_BEGINNING)
                    for topic, meta in zip(self.topics, found, strict=True)
                    for partition in sorted(meta.partitions)
                ]
            self.topics_missing = True
            log.info("%s: waiting for topics %s to exist", self.name, self.topics)
            self._stop_event.wait(1.0)
        return []

    def _start(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Assign every partition from the beginning; the end offsets to catch up to. Retried
        while the cluster does not answer: a tail that gave up would leave its view stale for
        the rest of the process's life."""
        while not self._stop_event.is_set():
            try:
                assigned = self._partitions(consumer)
                if not assigned:
                    return {}
                ends = {
                    (tp.topic, tp.partition): watermark_offsets(consumer, tp)[1] for tp in assigned
                }
                consumer.assign(assigned)
                return ends
            except Exception as exc:  # noqa: BLE001 - the broker may be down or electing
                log.warning("%s: cannot start following %s yet (%s)", self.name, self.topics, exc)
                self._stop_event.wait(2.0)
        return {}

    def _apply(self, message: Message) -> None:
        try:
            self.apply(message.topic() or "", message.key(), message.value())
        except Exception:  # noqa: BLE001 - one unreadable record must not end the view
            log.exception(
                "%s: record skipped topic=%s partition=%s offset=%s",
                self.name,
                message.topic(),
                message.partition(),
                message.offset(),
            )

    def run(self) -> None:
        consumer = make_consumer(
            self.bootstrap_servers,
            f"relearn-tail-{uuid.uuid4()}",
            **{"enable.auto.commit": False, "fetch.wait.max.ms": 50},
        )
        try:
            ends = self._start(consumer)
            if not ends:
                return
            while not self._stop_event.is_set():
                for message in consumer.consume(5_000, timeout=0.2):
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("%s: read error %s", self.name, error)
                        continue
                    self._apply(message)
                    self.records += 1
                if not self.caught_up:
                    positions = consumer.position([TopicPartition(t, p) for (t, p) in ends])
                    if all(
                        tp.offset >= ends[(tp.topic, tp.partition)]
                        or ends[(tp.topic, tp.partition)] == 0
                        for tp in positions
                    ):
                        self.caught_up = True
                        log.info("%s: caught up after %d records", self.name, self.records)
        except Exception:  # noqa: BLE001 - a dead tail must at least be visible
            log.exception("%s stopped", self.name)
            raise
        finally:
            consumer.close()
