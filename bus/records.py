"""A consumed record as the toolkit hands it on, and decoding one with a contract model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from pydantic import BaseModel, ValidationError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MAX_RECORD_BYTES = 1 << 20


class Poison(Exception):
    """A record that can never be handled: it goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Record(Generic[T]):
    """Where a record was read, its key, its decoded value and its CreateTime in seconds."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: T
    timestamp: float | None

    @classmethod
    def of(cls, message: Message, value: T) -> Record[T]:
        kind, millis = message.timestamp()
        return cls(
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            message.key(),
            value,
            None if kind == TIMESTAMP_NOT_AVAILABLE else millis / 1000.0,
        )


def where(message: Message) -> tuple[str, int, int]:
    """A consumed record's topic, partition and offset (never None for a record)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("a consumed record without topic, partition or offset")
    return topic, partition, offset


def decode(model: type[M], raw: bytes | None, max_bytes: int = MAX_RECORD_BYTES) -> M:
    """`raw` as a `model`, or Poison with the reason a dead letter carries."""
    if raw is None:
        raise Poison("empty", "record has no value")
    if len(raw) > max_bytes:
        raise Poison("too_large", f"record is {len(raw)} bytes")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        reason = "invalid_json" if errors and errors[0]["type"] == "json_invalid" else "schema"
        raise Poison(reason, str(exc)[:1000]) from exc
