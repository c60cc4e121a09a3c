"""Publishes committed outbox rows (registry-events, manual retrain-commands), then marks them sent."""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from contracts.topics import Topics
from registry.metrics import RegistryMetrics
from registry.store import RegistryStore

log = logging.getLogger(__name__)

# How soon to try again when another instance held the outbox: it may have read the outbox
# just before this instance's newest row committed.
BUSY_RETRY_SECONDS = 0.05


class OutboxPublisher:
    """Commit, then publish, then mark sent: at-least-once, in commit order per model type.

    On start it publishes whatever an earlier process committed but never sent. A crash
    between publish and mark may publish a row twice; consumers de-duplicate on event_id.
    Instances sharing a database take turns (`RegistryStore.outbox_turn`): each row is read by
    one publisher, after every row before it was marked sent.
    """

    def __init__(
        self,
        store: RegistryStore,
        producer: Producer,
        topics: Topics,
        metrics: RegistryMetrics,
        interval: float = 1.0,
    ) -> None:
        self._store = store
        self._producer = producer
        self._topics = topics
        self._metrics = metrics
        self._interval = interval
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
            wait = self._interval
            try:
                if self.publish_pending() is None:
                    wait = BUSY_RETRY_SECONDS
            except Exception:  # the next wake-up retries; rows stay unsent, nothing is lost
                log.exception("outbox publish failed")
            self._wake.wait(wait)
            self._wake.clear()
        try:
            self.publish_pending()
        except Exception:
            log.exception("final outbox publish failed")

    def publish_pending(self) -> int | None:
        """Publish every unsent row; returns how many were confirmed and marked sent, or None
        when another instance has the outbox's turn (it publishes them)."""
        with self._store.outbox_turn() as ours:
            return self._publish_unsent() if ours else None

    def _publish_unsent(self) -> int:
        published = 0
        while True:
            rows = self._store.unsent_events()
            self._metrics.outbox_unsent.set(len(rows))
            if not rows:
                return published
            delivered: list[int] = []
            failed: list[str] = []
            for row in rows:
                try:
                    self._producer.produce(
                        self._topics.name(row.topic),
                        key=row.model_type.encode(),
                        value=row.payload,
                        on_delivery=_delivery_callback(row.id, delivered, failed),
                    )
                except (KafkaException, BufferError) as exc:
                    # e.g. a row too large to send: the rows after it are still published
                    failed.append(f"row {row.id}: {exc}")
            self._producer.flush(30)
            self._store.mark_sent(delivered)
            published += len(delivered)
            self._metrics.events_published.inc(len(delivered))
            if failed or len(delivered) < len(rows):
                raise RuntimeError(f"{len(rows) - len(delivered)} outbox rows unsent: {failed[:3]}")


def _delivery_callback(row_id: int, delivered: list[int], failed: list[str]) -> Any:
    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            delivered.append(row_id)
        else:
            failed.append(str(err))

    return on_delivery
