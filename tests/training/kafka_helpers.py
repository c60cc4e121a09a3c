"""Real-broker helpers for training's tests: produce samples and commands, read topics, run a worker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Message, TopicPartition

from bus.clients import READER, make_consumer, make_producer
from contracts.events import RetrainReason, RetrainRequested, to_json
from training.service import build_worker, make_command_consumer
from training.settings import TrainerSettings
from training.worker import RetrainWorker


def trainer_settings(
    bootstrap: str, prefix: str, tmp_path: Path, group_id: str, **overrides: Any
) -> TrainerSettings:
    values: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "topic_prefix": prefix,
        "state_dir": tmp_path / "state",
        "faults_dir": tmp_path / "faults",
        # no registry: under the deploy policy the gate notes it and deploys
        "registry_url": "http://127.0.0.1:1",
        "registry_timeout": 1.0,
        "gate_unavailable_policy": "deploy",
        "gate_attempts": 1,
        "trainer_group_id": group_id,
        "training_min_samples": 100,
        "training_max_epochs": 6,
        "training_patience": 3,
        "training_batch_size": 64,
        "training_learning_rate": 3e-3,
        "training_seed": 11,
    }
    values.update(overrides)
    return TrainerSettings(**values)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(bootstrap)
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def produce_samples(bootstrap: str, topic: str, samples: list[dict[str, Any]]) -> None:
    produce(bootstrap, topic, [(s["model_type"].encode(), orjson.dumps(s)) for s in samples])


def command(model_type: str, command_id: str | None = None) -> RetrainRequested:
    return RetrainRequested(
        command_id=command_id or str(uuid.uuid4()),
        model_type=model_type,
        reason=RetrainReason.MANUAL,
    )


def produce_command(bootstrap: str, topic: str, retrain: RetrainRequested) -> None:
    produce(bootstrap, topic, [(retrain.model_type.encode(), to_json(retrain))])


def read_topic(
    bootstrap: str, topic: str, count: int, timeout: float = 90.0, settle: float = 0.0
) -> list[Message]:
    """Every message from the beginning until `count` arrived (then `settle` more seconds), or timeout."""
    consumer = make_consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}", READER)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            messages.append(message)
            if len(messages) >= count and settle_until is None:
                settle_until = time.monotonic() + settle
        return messages
    finally:
        consumer.close()


@contextmanager
def running_worker(
    settings: TrainerSettings,
    worker: RetrainWorker | None = None,
    max_poll_interval_ms: int | None = None,
) -> Iterator[RetrainWorker]:
    worker = worker or build_worker(settings)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(make_command_consumer(settings, max_poll_interval_ms), stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name="trainer-under-test")
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the worker did not stop"
    assert not failure, f"the worker failed: {failure[0]!r}"
