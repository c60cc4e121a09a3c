"""Dead letters: what one carries (the headers docs/design.md names) and the one sender."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message, Producer

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

DETAIL_LIMIT = 4096
# A dead letter keeps the value unchanged up to this size. A larger value (only a compressing
# producer gets one past the broker's 1 MB limit) cannot be produced again whole: it is cut, and
# `error.truncated_from` says how long it was.
VALUE_LIMIT = 256 * 1024


def dead_letter(message: Message, reason: str, detail: str) -> tuple[bytes | None, Headers]:
    """The value and headers of the dead letter for `message`."""
    value = message.value()
    headers: Headers = [
        ("error.reason", reason.encode()),
        ("error.detail", detail.encode()[:DETAIL_LIMIT]),
        ("source.topic", (message.topic() or "").encode()),
        ("source.partition", str(message.partition()).encode()),
        ("source.offset", str(message.offset()).encode()),
    ]
    if value is not None and len(value) > VALUE_LIMIT:
        headers.append(("error.truncated_from", str(len(value)).encode()))
        value = value[:VALUE_LIMIT]
    return value, headers


class DeadLetterUndelivered(RuntimeError):
    """The dead-letter topic did not take the record: the offset must not move on."""


class DeadLetters:
    """The one dead-letter sender: produces the dead letter and waits for the broker's ack."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        on_sent: Callable[[str, str], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._on_sent = on_sent  # (source topic, reason): a service's counter
        self._timeout = timeout

    def send(self, message: Message, reason: str, detail: str) -> None:
        value, headers = dead_letter(message, reason, detail)
        self._producer.produce(self._topic, key=message.key(), value=value, headers=headers)
        if self._producer.flush(self._timeout) > 0:
            raise DeadLetterUndelivered(f"dead letter for {message.topic()} not delivered")
        if self._on_sent is not None:
            self._on_sent(message.topic() or "", reason)
        log.warning(
            "dead-lettered topic=%s partition=%s offset=%s reason=%s",
            message.topic(),
            message.partition(),
            message.offset(),
            reason,
        )
