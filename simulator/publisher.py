"""The Kafka edge of the simulator: outcome events to the outcome-events topic, keyed by subject_id."""

from __future__ import annotations

import logging
from typing import Any

from bus.clients import make_producer

log = logging.getLogger(__name__)


class KafkaPublisher:
    """An idempotent (acks=all) confluent-kafka producer; counts what the broker refused."""

    def __init__(self, bootstrap_servers: str, topic: str, **overrides: Any) -> None:
        self._producer = make_producer(bootstrap_servers, **overrides)
        self._topic = topic
        self._failures = 0
        self.delivered = 0

    @property
    def failures(self) -> int:
        return self._failures

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self._failures += 1
            log.error("delivery to %s failed: %s", self._topic, error)
        else:
            self.delivered += 1

    def publish(self, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic, key=key.encode(), value=value, on_delivery=self._on_delivery
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        return self._producer.flush(timeout)
