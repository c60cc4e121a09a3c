"""The registry's Kafka input: model-deployed and registry-commands, one consumer thread each.

A record that can never succeed goes to the internal DLQ with its reason and the offset moves
on; a transient failure (the database away) is retried with a bound, then the thread stops
loudly and /readyz reports it. Offsets are stored only after the database commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaError, Message, Producer, TopicPartition
from pydantic import ValidationError

from bus.clients import make_consumer
from bus.dead_letters import dead_letter
from contracts.events import MAX_NAME_LENGTH, ModelDeployed, RegistryCommandIssued
from registry.errors import RegistryError, StoreConflict
from registry.metrics import RegistryMetrics
from registry.service import RegistryService

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1 << 20
TRANSIENT_RETRIES = 5


class Poison(Exception):
    """A record that can never be handled: it goes to the DLQ with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


T = TypeVar("T", ModelDeployed, RegistryCommandIssued)


def _decode(model: type[T], raw: bytes | None) -> T:
    if raw is None:
        raise Poison("empty", "record has no value")
    if len(raw) > MAX_RECORD_BYTES:
        raise Poison("too_large", f"record is {len(raw)} bytes")
    try:
        event = model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        reason = "invalid_json" if errors and errors[0]["type"] == "json_invalid" else "schema"
        raise Poison(reason, str(exc)[:1000]) from exc
    message_id = event.deployment_id if isinstance(event, ModelDeployed) else event.command_id
    for name, value in (("model_type", event.model_type), ("id", message_id)):
        # The columns hold 64 characters: longer could never be stored, so it is poison.
        if not 0 < len(value) <= MAX_NAME_LENGTH or "\x00" in value:
            raise Poison("schema", f"{name} must be 1..{MAX_NAME_LENGTH} characters, no NUL")
    return event


def handle_model_deployed(service: RegistryService, raw: bytes | None) -> None:
    deployment = _decode(ModelDeployed, raw)
    try:
        service.register_deployment(deployment)
    except StoreConflict:
        raise  # writers kept winning: transient, retried like a database away, never poison
    except RegistryError as exc:  # e.g. unstorable: never retried, never blocks the partition
        raise Poison(exc.code, str(exc)) from exc


def handle_registry_command(service: RegistryService, raw: bytes | None) -> None:
    command = _decode(RegistryCommandIssued, raw)
    try:
        service.handle_command(command)
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
        raise Poison(exc.code, str(exc)) from exc


class DeadLetters:
    """Sends a record to the internal DLQ with error.* and source.* headers (`bus.dead_letters`)."""

    def __init__(self, producer: Producer, topic: str, metrics: RegistryMetrics) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics

    def send(self, message: Message, reason: str, detail: str) -> None:
        value, headers = dead_letter(message, reason, detail)
        self._producer.produce(self._topic, key=message.key(), value=value, headers=headers)
        if self._producer.flush(30) > 0:
            raise RuntimeError(f"dead letter for {message.topic()} not delivered")
        self._metrics.dead_letters.labels(message.topic() or "", reason).inc()
        log.warning(
            "dead-lettered topic=%s partition=%s offset=%s reason=%s",
            message.topic(),
            message.partition(),
            message.offset(),
            reason,
        )


class InputConsumer:
    """A consumer thread: poll, handle, dead-letter poison, store the offset after the commit."""

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
        self._handle = handle
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._poll_timeout = poll_timeout
        self._lag_interval = lag_interval
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._on_fatal = on_fatal
        self._retries = retries
        self._backoff = backoff
        self._session_timeout_ms = session_timeout_ms
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=f"registry-{topic}", daemon=True)

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
            self._bootstrap, self._group_id, **{"session.timeout.ms": self._session_timeout_ms}
        )
        consumer.subscribe([self.topic])
        next_lag = time.monotonic() + self._lag_interval
        try:
            while not self._stop.is_set():
                message = consumer.poll(self._poll_timeout)
                if time.monotonic() >= next_lag:
                    self._record_lag(consumer)
                    next_lag = time.monotonic() + self._lag_interval
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error topic=%s: %s", self.topic, error)
                    continue
                self._process(message)
                consumer.store_offsets(message)
                self.processed += 1
        except BaseException as exc:
            self.failure = exc
            log.critical("registry consumer stopped topic=%s: %s", self.topic, exc, exc_info=True)
        finally:
            consumer.close()
        if self.failure is not None and self._on_fatal is not None:
            self._on_fatal()

    def _process(self, message: Message) -> None:
        for attempt in range(1, self._retries + 1):
            try:
                self._handle(message.value())
                return
            except Poison as exc:
                self._dead_letters.send(message, exc.reason, exc.detail)
                return
            except Exception:
                if attempt == self._retries:
                    raise
                log.warning(
                    "transient failure topic=%s partition=%s offset=%s attempt=%d",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    attempt,
                    exc_info=True,
                )
                time.sleep(min(self._backoff * 2**attempt, 8.0))

    def _record_lag(self, consumer: object) -> None:
        try:
            assignment: list[TopicPartition] = consumer.assignment()  # type: ignore[attr-defined]
            for tp in consumer.position(assignment):  # type: ignore[attr-defined]
                _low, high = consumer.get_watermark_offsets(  # type: ignore[attr-defined]
                    tp, timeout=1.0
                )
                lag = max(0, high - tp.offset) if tp.offset >= 0 else high
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        except Exception:
            log.debug("lag probe failed topic=%s", self.topic, exc_info=True)
