"""The consumer loop's pieces without a broker: what is retried, what is poison, what stops it."""

from __future__ import annotations

import pytest
from confluent_kafka import Message

from bus.consumer_loop import NO_RETRY, RetryPolicy
from bus.records import Poison, decode
from contracts.events import RetrainRequested

MESSAGE = Message(topic="t.in", partition=1, offset=7, key=b"k", value=b"{}")


def test_a_transient_failure_is_tried_the_bounded_number_of_times_then_raised() -> None:
    calls: list[Message] = []

    def database_away(message: Message) -> None:
        calls.append(message)
        raise ConnectionError("database unreachable")

    with pytest.raises(ConnectionError):
        RetryPolicy(attempts=3, first_wait=0.001).call(database_away, MESSAGE)
    assert len(calls) == 3


def test_a_failure_that_passes_returns_the_work_s_result() -> None:
    calls: list[int] = []

    def flaky(_message: Message) -> str:
        calls.append(1)
        if len(calls) < 2:
            raise TimeoutError("once")
        return "done"

    assert RetryPolicy(attempts=3, first_wait=0.001).call(flaky, MESSAGE) == "done"
    assert len(calls) == 2


def test_poison_is_never_retried() -> None:
    calls: list[int] = []

    def unreadable(message: Message) -> None:
        calls.append(1)
        decode(RetrainRequested, message.value())

    with pytest.raises(Poison) as caught:
        RetryPolicy(attempts=5, first_wait=0.001).call(unreadable, MESSAGE)
    assert len(calls) == 1 and caught.value.reason == "schema"


def test_no_retry_tries_once() -> None:
    calls: list[int] = []

    def failing(_message: Message) -> None:
        calls.append(1)
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        NO_RETRY.call(failing, MESSAGE)
    assert calls == [1]


@pytest.mark.parametrize(
    "raw, reason",
    [
        (None, "empty"),
        (b"x" * (2 << 20), "too_large"),
        (b"{nope", "invalid_json"),
        (b"[]", "schema"),
    ],
)
def test_decode_names_why_a_record_is_poison(raw: bytes | None, reason: str) -> None:
    with pytest.raises(Poison) as caught:
        decode(RetrainRequested, raw)
    assert caught.value.reason == reason
