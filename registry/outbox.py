"""Publishes committed outbox rows (registry-events, manual retrain-commands), then marks them sent."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, KafkaException, Producer

from contracts.topics import Topics
from registry.domain import OutboxRecord
from registry.metrics import RegistryMetrics
from registry.store import RegistryStore

log = logging.getLogger(__name__)


class OutboxPublisher:
    """Commit, then publish, then mark sent: at-least-once, in commit order per model type.

    On start it publishes whatever an earlier process committed but never sent. A crash
    between publish and mark may publish a row twice; consumers de-duplicate on event_id.
    Short of a crash a row is sent once: one publisher at a time among the instances sharing
    the database (`RegistryStore.publishing`), and a row whose delivery report has not come
    when a flush times out stays in flight, never produced again while it is.
    """

    def __init__(
        self,
        store: RegistryStore,
        producer: Producer,
        topics: Topics,
        metrics: RegistryMetrics,
        interval: float = 1.0,
        flush_timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._producer = producer
        self._topics = topics
        self._metrics = metrics
        self._interval = interval
        self._flush_timeout = flush_timeout
        self._deliveries = _Deliveries()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.publish_pending()
            except Exception:  # the next wake-up retries; rows stay unsent, nothing is lost
                log.exception("outbox publish failed")
            self._wake.wait(self._interval)
            self._wake.clear()
        try:
            self.publish_pending()
        except Exception:
            log.exception("final outbox publish failed")

    def publish_pending(self) -> int:
        """Publish every unsent row; returns how many were confirmed and marked sent."""
        published = 0
        with self._store.publishing():
            while True:
                rows = self._store.unsent_events()
                self._metrics.outbox_unsent.set(len(rows))
                if not rows:
                    return published
                for row in rows:
                    self._produce(row)
                self._producer.flush(self._flush_timeout)
                delivered, failed = self._deliveries.take()
                self._store.mark_sent(delivered)
                self._deliveries.marked(delivered)
                published += len(delivered)
                self._metrics.events_published.inc(len(delivered))
                unsent = len({row.id for row in rows} - set(delivered))
                if failed or unsent:
                    raise RuntimeError(f"{unsent} outbox rows unsent: {failed[:3]}")

    def _produce(self, row: OutboxRecord) -> None:
        if not self._deliveries.claim(row.id):
            return  # sent already; its report, or its marking, is still to come
        try:
            self._producer.produce(
                self._topics.name(row.topic),
                key=row.model_type.encode(),
                value=row.payload,
                on_delivery=lambda err, _msg: self._deliveries.report(row.id, err),
            )
        except (KafkaException, BufferError) as exc:
            # e.g. a row too large to send: the rows after it are still published
            self._deliveries.report(row.id, exc)


class _Deliveries:
    """Each produced row's fate by id, across rounds: in flight, on the topic (not yet marked
    sent), or failed. Reports come on whichever thread flushes the producer (the publisher's;
    the app's shutdown flush), possibly a round after their row was produced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._delivered: set[int] = set()
        self._failed: list[str] = []

    def claim(self, row_id: int) -> bool:
        """True (and now in flight) unless the row is in flight or delivered already."""
        with self._lock:
            if row_id in self._in_flight or row_id in self._delivered:
                return False
            self._in_flight.add(row_id)
            return True

    def report(self, row_id: int, err: KafkaError | KafkaException | BufferError | None) -> None:
        with self._lock:
            self._in_flight.discard(row_id)
            if err is None:
                self._delivered.add(row_id)
            else:
                self._failed.append(f"row {row_id}: {err}")

    def take(self) -> tuple[list[int], list[str]]:
        """The rows delivered and not yet marked; the failures since the last call (their rows
        may be produced again)."""
        with self._lock:
            failed, self._failed = self._failed, []
            return sorted(self._delivered), failed

    def marked(self, row_ids: list[int]) -> None:
        with self._lock:
            self._delivered.difference_update(row_ids)
