"""The worker's one producer: every forward, command, dead letter and changelog record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bus.clients import ProducerOptions, make_producer
from bus.dead_letters import Headers, dead_letter

log = logging.getLogger(__name__)


class Sender:
    """Produces without ever dropping a record: a full local queue waits for librdkafka, a
    failed delivery is reported to `on_failure` (the source offsets must not be committed)."""

    def __init__(
        self,
        bootstrap_servers: str,
        stopping: threading.Event,
        on_failure: Callable[[str], None],
        on_client_error: Callable[[KafkaError], None],
    ) -> None:
        self._stopping = stopping
        self._on_failure = on_failure
        self.producer: Producer = make_producer(
            bootstrap_servers,
            ProducerOptions(
                batch_num_messages=10_000,
                queue_buffering_max_messages=1_000_000,
                queue_buffering_max_kbytes=1_048_576,
                # Never give up on a message: a broker outage blocks the next commit instead.
                message_timeout_ms=0,
                # Java's partitioner: the same key lands where other clients expect it.
                java_partitioner=True,
                error_cb=on_client_error,
                on_delivery=self.on_delivery,
            ),
        )

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        **extra: Any,
    ) -> None:
        producer = self.producer
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, **extra)
                return
            except BufferError:  # the local queue is full: let librdkafka send some
                producer.poll(0.05)

    def dead_letter(self, topic: str, message: Message, reason: str, detail: str) -> None:
        """Produced like any other record (not flushed one by one): the batch's commit waits
        for it with the rest."""
        value, headers = dead_letter(message, reason, detail)
        self.produce(topic, message.key(), value, headers)

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """Every produced message ends here (from poll/flush): a failed one means a forward,
        command or changelog record is missing, so the source offsets must not be committed."""
        if error is not None:
            self._on_failure(f"delivery to {message.topic()} failed: {error}")

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self) -> bool:
        """Wait until the broker has every message produced so far; False if stopping first
        (messages still queued: nothing may be committed, the next owner replays)."""
        while (left := self.producer.flush(5.0)) > 0:
            if self._stopping.is_set():
                log.warning("stopping with %d messages not yet taken by the broker", left)
                return False
            log.warning("waiting for the broker to take %d messages", left)
        return True

    def close(self) -> None:
        self.producer.flush(10)
