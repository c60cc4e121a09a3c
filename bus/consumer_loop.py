"""The at-least-once consumer loop: poll, handle, dead-letter poison, retry, store the offset.

A record that can never succeed (`Poison`) goes to the dead-letter topic with its reason and the
offset moves on; any other failure is retried with a bound (`RetryPolicy`), then the loop stops
loudly and leaves the offset where it was. The offset is stored (or committed) only after the
work. With an `offload` executor the work runs on another thread while the loop keeps polling
with the assignment paused, so work longer than max.poll.interval.ms never costs a rebalance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from bus.dead_letters import DeadLetters
from bus.records import Poison, where

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a transient failure is tried in all, and the first wait (doubled each time)."""

    attempts: int = 5
    first_wait: float = 1.0
    max_wait: float = 8.0

    def call(self, work: Callable[[Message], R], message: Message) -> R:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.first_wait, max=self.max_wait),
            retry=retry_if_not_exception_type(Poison),
            reraise=True,
            before_sleep=_log_retry(message),
        )
        return retrying(work, message)


NO_RETRY = RetryPolicy(attempts=1)


def _log_retry(message: Message) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "transient failure topic=%s partition=%s offset=%s attempt=%d: %r",
            message.topic(),
            message.partition(),
            message.offset(),
            state.attempt_number,
            error,
        )

    return before_sleep


class Ack(StrEnum):
    """How a handled record's offset is kept."""

    STORE = "store"  # store_offsets; the client's auto-commit writes it within its interval
    COMMIT = "commit"  # a synchronous commit now; a failed one is logged (a redelivery follows)


@dataclass
class _Dead:
    """The work's result when the record was dead-lettered instead."""


@dataclass
class ConsumerLoop(Generic[R]):
    """Subscribes to `topics` and runs until `stop`; `run` closes the consumer it was given.

    Hooks, each optional: `on_done(message, result)` after the work and before the offset (e.g.
    publish the outcome); `every = (seconds, fn)` called with the consumer between polls (e.g.
    a lag gauge); `before_close(busy)` when the loop ends, `busy` if work was still running.
    Without `dead_letters`, poison is not expected: it stops the loop like any other failure.
    """

    name: str
    topics: list[str]
    handle: Callable[[Message], R]
    _: KW_ONLY
    dead_letters: DeadLetters | None = None
    retry: RetryPolicy = NO_RETRY
    ack: Ack = Ack.STORE
    poll_timeout: float = 0.5
    on_done: Callable[[Message, R], None] | None = None
    every: tuple[float, Callable[[Consumer], None]] | None = None
    offload: Executor | None = None
    before_close: Callable[[bool], None] | None = None
    processed: int = field(default=0, init=False)

    def run(self, consumer: Consumer, stop: threading.Event) -> None:
        consumer.subscribe(self.topics)
        pending: tuple[Message, Future[R | _Dead]] | None = None
        next_tick = time.monotonic() + (self.every[0] if self.every else 0.0)
        try:
            while not stop.is_set():
                if pending is not None:
                    # Paused while the work runs: sleep on it (woken the moment it ends), then
                    # poll without blocking, so the group sees us alive.
                    wait([pending[1]], timeout=1.0)
                message = consumer.poll(0.0 if pending is not None else self.poll_timeout)
                if self.every is not None and time.monotonic() >= next_tick:
                    self.every[1](consumer)
                    next_tick = time.monotonic() + self.every[0]
                if pending is not None and pending[1].done():
                    self._finish(consumer, pending[0], pending[1].result())
                    pending = None
                    consumer.resume(consumer.assignment())
                if message is None or not _readable(message, self.name):
                    continue
                if pending is not None:
                    # Fetched before the pause took hold, or assigned by a rebalance: hand it back.
                    here = TopicPartition(*where(message))
                    consumer.seek(here)
                    consumer.pause([here])
                    continue
                if self.offload is None:
                    self._finish(consumer, message, self._work(message))
                    continue
                consumer.pause(consumer.assignment())
                pending = (message, self.offload.submit(self._work, message))
        except Exception as exc:
            log.critical("%s stopped topics=%s: %s", self.name, self.topics, exc, exc_info=True)
            raise
        finally:
            if self.before_close is not None:
                self.before_close(pending is not None)
            consumer.close()

    def _work(self, message: Message) -> R | _Dead:
        try:
            return self.retry.call(self.handle, message)
        except Poison as exc:
            if self.dead_letters is None:
                raise
            self.dead_letters.send(message, exc.reason, exc.detail)
            return _Dead()

    def _finish(self, consumer: Consumer, message: Message, result: R | _Dead) -> None:
        if self.on_done is not None and not isinstance(result, _Dead):
            self.on_done(message, result)
        if self.ack is Ack.STORE:
            consumer.store_offsets(message)
        else:
            topic, partition, offset = where(message)
            following = TopicPartition(topic, partition, offset + 1)
            try:
                consumer.commit(offsets=[following], asynchronous=False)
            except Exception as exc:  # noqa: BLE001 - e.g. the partition moved in a rebalance
                log.warning(
                    "%s: commit of %s failed (%s); the record will be delivered again",
                    self.name,
                    following,
                    exc,
                )
        self.processed += 1


def _readable(message: Message, name: str) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("%s: consumer error topic=%s: %s", name, message.topic(), error)
    return False
