"""What a dead letter carries: the record's value and the headers docs/design.md names."""

from __future__ import annotations

from confluent_kafka import Message

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
