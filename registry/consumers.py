"""The registry's Kafka input: model-deployed and registry-commands, one consumer thread each.

A record that can never succeed goes to the internal DLQ with its reason and the offset moves
on; a transient failure (the database away) is retried with a bound, then the thread stops
loudly and /readyz reports it. Offsets are stored only after the database commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Consumer, Producer, TopicPartition

from bus.clients import ConsumerOptions, make_consumer
from bus.consumer_loop import ConsumerLoop, RetryPolicy
from bus.dead_letters import DeadLetters
from bus.logs import log_context
from bus.records import Poison, decode
from contracts.events import MAX_NAME_LENGTH, ModelDeployed, RegistryCommandIssued
from registry.errors import RegistryError, StoreConflict
from registry.metrics import RegistryMetrics
from registry.service import RegistryService

log = logging.getLogger(__name__)

TRANSIENT_RETRIES = 5

__all__ = ["Poison", "DeadLetters", "InputConsumer", "counted_dead_letters"]

T = TypeVar("T", ModelDeployed, RegistryCommandIssued)


def _decode(model: type[T], raw: bytes | None) -> T:
    event = decode(model, raw)
    message_id = event.deployment_id if isinstance(event, ModelDeployed) else event.command_id
    for name, value in (("model_type", event.model_type), ("id", message_id)):
        # The columns hold 64 characters: longer could never be stored, so it is poison.
        if not 0 < len(value) <= MAX_NAME_LENGTH or "\x00" in value:
            raise Poison("schema", f"{name} must be 1..{MAX_NAME_LENGTH} characters, no NUL")
    return event


def handle_model_deployed(service: RegistryService, raw: bytes | None) -> None:
    deployment = _decode(ModelDeployed, raw)
    with log_context(
        model_type=deployment.model_type,
        command_id=deployment.command_id,
        event_id=deployment.deployment_id,
    ):
        try:
            service.register_deployment(deployment)
        except StoreConflict:
            raise  # writers kept winning: transient, retried like a database away, never poison
        except RegistryError as exc:  # e.g. unstorable: never retried, never blocks the partition
            raise Poison(exc.code, str(exc)) from exc


def handle_registry_command(service: RegistryService, raw: bytes | None) -> None:
    command = _decode(RegistryCommandIssued, raw)
    with log_context(
        model_type=command.model_type, command_id=command.command_id, version=command.version
    ):
        try:
            result = service.handle_command(command)
        except StoreConflict:
            raise  # transient (see handle_model_deployed)
        except RegistryError as exc:
            log.warning(
                "command refused command_id=%s model_type=%s reason=%s: %s",
                command.command_id,
                command.model_type,
                exc.code,
                exc,
            )
            service.metrics.command_handled(command.model_type, command.type.value, "refused")
            raise Poison(exc.code, str(exc)) from exc
        status = "duplicate" if result.duplicate else "applied"
        service.metrics.command_handled(command.model_type, command.type.value, status)


def counted_dead_letters(producer: Producer, topic: str, metrics: RegistryMetrics) -> DeadLetters:
    """The internal DLQ's sender, counting each dead letter by source topic and reason."""
    return DeadLetters(
        producer,
        topic,
        on_sent=lambda source, reason: metrics.dead_letters.labels(source, reason).inc(),
    )


class InputConsumer:
    """A consumer thread running the bus's at-least-once loop over one input topic."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topic: str,
        handle: Callable[[bytes | None], None],
        dead_letters: DeadLetters,
        metrics: RegistryMetrics,
        poll_timeout: float = 0.5,
        lag_interval: float = 5.0,
        on_fatal: Callable[[], None] | None = None,
        retries: int = TRANSIENT_RETRIES,
        backoff: float = 0.5,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._group_id = group_id
        self._metrics = metrics
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._on_fatal = on_fatal
        self._session_timeout_ms = session_timeout_ms
        self._loop: ConsumerLoop[None] = ConsumerLoop(
            f"registry-{topic}",
            [topic],
            lambda message: handle(message.value()),
            dead_letters=dead_letters,
            retry=RetryPolicy(attempts=retries, first_wait=2 * backoff),
            poll_timeout=poll_timeout,
            every=(lag_interval, self._record_lag),
        )
        self._thread = threading.Thread(target=self._run, name=f"registry-{topic}", daemon=True)

    @property
    def processed(self) -> int:
        return self._loop.processed

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def healthy(self) -> bool:
        return self._thread.is_alive() and self.failure is None

    def _run(self) -> None:
        consumer = make_consumer(
            self._bootstrap,
            self._group_id,
            ConsumerOptions(session_timeout_ms=self._session_timeout_ms),
        )
        try:
            self._loop.run(consumer, self._stop)
        except BaseException as exc:  # noqa: BLE001 - the loop logged it; /readyz reports it
            self.failure = exc
        if self.failure is not None and self._on_fatal is not None:
            self._on_fatal()

    def _record_lag(self, consumer: Consumer) -> None:
        try:
            assignment: list[TopicPartition] = consumer.assignment()
            for tp in consumer.position(assignment):
                # The end the last fetch reported: asking the broker would stall this thread,
                # the one that registers deployments, for a round trip per partition.
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue  # no fetch answered for this partition yet
                lag = max(0, high - tp.offset) if tp.offset >= 0 else high
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        except Exception:
            log.debug("lag probe failed topic=%s", self.topic, exc_info=True)
