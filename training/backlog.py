"""Looks ahead on retrain-commands: is a newer command for the same model type already queued?"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Protocol

from confluent_kafka import KafkaError, TopicPartition
from pydantic import ValidationError

from bus.clients import ConsumerOptions, make_consumer
from contracts.events import RetrainRequested

log = logging.getLogger(__name__)


class CommandBacklog(Protocol):
    def newest_after(
        self, topic: str, partition: int, offset: int, model_type: str
    ) -> RetrainRequested | None:
        """The newest readable command for `model_type` after `offset` in that partition."""
        ...


class KafkaCommandBacklog:
    """Reads a partition from a command's offset to its end (no group, assign only).

    Commands are keyed by model type, so all of one type's commands share one partition and
    the backlog behind a command is exactly what this reads. Bounded by `max_records` and
    `timeout`: a look that cannot finish says "nothing newer", and the command just trains.
    """

    def __init__(
        self, bootstrap_servers: str, timeout: float = 10.0, max_records: int = 10_000
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        self.max_records = max_records

    def newest_after(
        self, topic: str, partition: int, offset: int, model_type: str
    ) -> RetrainRequested | None:
        consumer = make_consumer(
            self.bootstrap_servers,
            f"relearn-trainer-backlog-{uuid.uuid4().hex[:8]}",  # never joins: assign() only
            ConsumerOptions(auto_commit=False, partition_eof=True),
        )
        try:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self.timeout
            )
            start = max(offset + 1, high - self.max_records)
            if start >= high:
                return None
            consumer.assign([TopicPartition(topic, partition, start)])
            newest: RetrainRequested | None = None
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return newest
                    continue
                try:
                    command = RetrainRequested.model_validate_json(message.value() or b"")
                except ValidationError:
                    command = None
                if (
                    command is not None
                    and command.model_type == model_type
                    and "command_id" in command.model_fields_set
                ):
                    newest = command
                if (message.offset() or 0) >= high - 1:
                    return newest
            log.warning("backlog look-ahead on %s[%d] timed out", topic, partition)
            return None
        except Exception as exc:  # noqa: BLE001 - a failed look-ahead only costs a superseded training
            log.warning("backlog look-ahead on %s[%d] failed: %s", topic, partition, exc)
            return None
        finally:
            consumer.close()
