"""The registry on a real broker: consumers, outbox publishing, DLQ, retrain, replay idempotency."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Message, TopicPartition
from fastapi.testclient import TestClient

from bus.clients import make_consumer, make_producer
from contracts.events import (
    RegistryCommandIssued,
    RegistryCommandType,
    RegistryEventOccurred,
    RegistryEventType,
    RetrainRequested,
    to_json,
)
from contracts.topics import Topics
from registry.consumers import InputConsumer, counted_dead_letters
from registry.main import create_app
from registry.metrics import RegistryMetrics
from registry.service import RegistryService
from registry.settings import RegistrySettings
from registry.views import VersionOut
from tests.registry.conftest import kafkaless_settings, make_deployment, service_of, wait_for

TOKEN = "kafka-token"
MT = "calling_score"


@contextmanager
def running_registry(
    tmp_path: Path, bootstrap: str, topics: Topics, artifact_dir: Path, group: str
) -> Iterator[TestClient]:
    settings = RegistrySettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        topic_prefix=topics.prefix,
        state_dir=tmp_path,
        artifact_dir=artifact_dir,
        api_token=TOKEN,
        registry_consumer_group=group,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def processed(client: TestClient) -> int:
    return sum(c.processed for c in client.app.state.consumers)  # type: ignore[attr-defined]


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    consumer = make_consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    found: list[Message] = []
    try:
        wait_for(lambda: _poll_into(consumer, found) >= count, timeout, f"{count} on {topic}")
    finally:
        consumer.close()
    return found


def _poll_into(consumer, found: list[Message]) -> int:  # type: ignore[no-untyped-def]
    for message in consumer.consume(100, timeout=0.5):
        if message.error() is None:
            found.append(message)
    return len(found)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(bootstrap)
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def snapshot(service: RegistryService) -> tuple:
    store = service.store
    return (
        [[VersionOut.of(v).model_dump() for v in store.versions(t)] for t in store.model_types()],
        store.event_count(),
    )


def test_consumes_publishes_dead_letters_and_replays_idempotently(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, artifact_dir: Path, group_id: str
) -> None:
    deployments = [make_deployment(artifact_dir, seed=i) for i in range(3)]
    bad_sha = make_deployment(artifact_dir, seed=9).model_copy(update={"sha256": "f" * 64})
    key = MT.encode()
    produce(
        kafka_bootstrap,
        topics.model_deployed,
        [
            (key, to_json(deployments[0])),
            (key, b"{not json"),
            (key, b'{"model_type": "calling_score"}'),
            (key, to_json(bad_sha)),
            (key, to_json(deployments[1])),
            (key, to_json(deployments[1])),  # a duplicate delivery
            (key, to_json(deployments[2])),
        ],
    )
    commands = [
        RegistryCommandIssued(
            type=RegistryCommandType.PROMOTE,
            model_type=MT,
            version="v1.2",  # v1.1 was replaced by v1.2 before its test decided
            weights={"v1.2": 0.5, "v1.0": 0.5},
            reason="ramp",
        ),
        RegistryCommandIssued(
            type=RegistryCommandType.ROLLBACK, model_type=MT, version="v1.2", reason="worse"
        ),
        RegistryCommandIssued(type=RegistryCommandType.ROLLBACK, model_type=MT, version="v7.7"),
    ]
    with running_registry(tmp_path, kafka_bootstrap, topics, artifact_dir, group_id) as client:
        service = service_of(client)
        wait_for(lambda: processed(client) >= 7, 60, "model-deployed consumed")
        assert [v.version for v in service.store.versions(MT)] == ["v1.0", "v1.1", "v1.2"]
        produce(
            kafka_bootstrap,
            topics.registry_commands,
            [(key, to_json(c)) for c in commands] + [(key, b"[]")],
        )
        wait_for(lambda: processed(client) >= 11, 60, "registry-commands consumed")
        weights = client.get(f"/models/{MT}").json()["weights"]
        assert weights == {"v1.0": 1.0}  # the ramp of v1.2, then its rollback
        statuses = [v.status.value for v in service.store.versions(MT)]
        assert statuses == ["production", "rolled_back", "rolled_back"]
        wait_for(lambda: not service.store.unsent_events(), 30, "outbox drained")
        before = snapshot(service)

        retrain = client.post(f"/models/{MT}/retrain", headers={"Authorization": f"Bearer {TOKEN}"})
        assert retrain.status_code == 202
        [sent] = read_topic(kafka_bootstrap, topics.retrain_commands, 1)
        command = RetrainRequested.model_validate_json(sent.value())
        assert command.command_id == retrain.json()["command_id"]
        assert command.reason == "manual" and command.baseline_version == "v1.0"
        assert client.get("/readyz").json()["ready"] is True

    events = [
        RegistryEventOccurred.model_validate_json(m.value())
        for m in read_topic(kafka_bootstrap, topics.registry_events, before[1])
    ]
    assert len(events) == before[1]
    assert {m.key() for m in read_topic(kafka_bootstrap, topics.registry_events, 1)} == {key}
    rejected = [e for e in events if e.type is RegistryEventType.ARTIFACT_REJECTED]
    assert [e.reason for e in rejected] == ["sha256_mismatch"]
    assert events[-1].type is RegistryEventType.VERSION_ROLLED_BACK
    assert events[-1].weights == {"v1.0": 1.0}

    dead = read_topic(kafka_bootstrap, topics.internal_dlq, 4)
    reasons = {
        (dict(m.headers())["source.topic"].decode(), dict(m.headers())["error.reason"].decode())
        for m in dead
    }
    assert reasons == {
        (topics.model_deployed, "invalid_json"),
        (topics.model_deployed, "schema"),
        (topics.registry_commands, "unknown_version"),
        (topics.registry_commands, "schema"),
    }
    assert all(
        {"error.detail", "source.partition", "source.offset"} <= set(dict(m.headers()))
        for m in dead
    )
    assert b"{not json" in {m.value() for m in dead}

    # Replay both input topics from the beginning (a new consumer group, the same database).
    with running_registry(
        tmp_path, kafka_bootstrap, topics, artifact_dir, group_id + "-replay"
    ) as client:
        wait_for(lambda: processed(client) >= 11, 60, "replay consumed")
        assert snapshot(service_of(client)) == before
    # Malformed records carry no id to de-duplicate on: they are dead-lettered again. The
    # refused command was recorded as processed, so it is not.
    again = read_topic(kafka_bootstrap, topics.internal_dlq, 7)[4:]
    assert sorted(dict(m.headers())["error.reason"].decode() for m in again) == [
        "invalid_json",
        "schema",
        "schema",
    ]


def test_events_committed_while_kafka_was_away_are_published_on_start(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, artifact_dir: Path, group_id: str
) -> None:
    with TestClient(create_app(kafkaless_settings(tmp_path, artifact_dir))) as client:
        service_of(client).register_deployment(make_deployment(artifact_dir))
        assert len(service_of(client).store.unsent_events()) == 2
    with running_registry(tmp_path, kafka_bootstrap, topics, artifact_dir, group_id) as client:
        wait_for(lambda: not service_of(client).store.unsent_events(), 30, "outbox drained")
    events = [
        RegistryEventOccurred.model_validate_json(m.value())
        for m in read_topic(kafka_bootstrap, topics.registry_events, 2)
    ]
    assert [e.type for e in events] == [
        RegistryEventType.VERSION_REGISTERED,
        RegistryEventType.TRAFFIC_CHANGED,
    ]


def test_a_transient_failure_is_retried_then_the_consumer_stops_loudly(
    kafka_bootstrap: str, topics: Topics, group_id: str
) -> None:
    calls: list[bytes | None] = []
    fatal = threading.Event()

    def database_away(raw: bytes | None) -> None:
        calls.append(raw)
        raise ConnectionError("database unreachable")

    producer = make_producer(kafka_bootstrap)
    dead_letters = counted_dead_letters(producer, topics.internal_dlq, RegistryMetrics())
    consumer = InputConsumer(
        kafka_bootstrap,
        group_id,
        topics.model_deployed,
        database_away,
        dead_letters,
        RegistryMetrics(),
        on_fatal=fatal.set,
        retries=3,
        backoff=0.01,
    )
    produce(kafka_bootstrap, topics.model_deployed, [(b"k", b"{}")])
    consumer.start()
    try:
        assert fatal.wait(30)
        assert len(calls) == 3 and isinstance(consumer.failure, ConnectionError)
        assert not consumer.healthy and consumer.processed == 0
    finally:
        consumer.stop()
    probe = make_consumer(kafka_bootstrap, group_id)
    try:
        partitions = [TopicPartition(topics.model_deployed, p) for p in range(4)]
        committed = probe.committed(partitions, timeout=10)
    finally:
        probe.close()
    assert all(tp.offset < 0 for tp in committed)  # nothing committed: it will be retried


def test_the_lag_gauge_follows_the_partition_without_asking_the_broker_on_the_loop(
    kafka_bootstrap: str, topics: Topics, group_id: str
) -> None:
    """The lag is the end the fetches report minus the position, probed between records on the
    thread that registers deployments; it falls to 0 once everything is handled. Asking the
    broker instead queued each partition's request behind the consumer's fetch (up to
    fetch.wait.max.ms, 500 ms): ~2 s per probe of 4 partitions, deployments waiting behind it."""
    metrics = RegistryMetrics()
    lags: list[float] = []
    handled: list[float] = []

    def gauge() -> float:
        return metrics.consumer_lag.labels(topics.model_deployed, "0")._value.get()

    def slow(raw: bytes | None) -> None:
        lags.append(gauge())  # what the probe before this record set
        handled.append(time.monotonic())
        time.sleep(0.2)

    producer = make_producer(kafka_bootstrap)
    produce_to = [(b"k", b"%d" % i) for i in range(6)]
    for key, value in produce_to:
        producer.produce(topics.model_deployed, key=key, value=value, partition=0)
    assert producer.flush(30) == 0
    consumer = InputConsumer(
        kafka_bootstrap,
        group_id,
        topics.model_deployed,
        slow,
        counted_dead_letters(producer, topics.internal_dlq, metrics),
        metrics,
        lag_interval=0.0,
    )
    consumer.start()
    try:
        wait_for(lambda: consumer.processed == 6, 60, "6 records handled")
        wait_for(lambda: gauge() == 0, 10, "the lag gauge back at 0")
        assert max(lags) >= 3  # records still waiting were counted while the first were handled
        assert lags == sorted(lags, reverse=True)
        # 5 x 0.2 s of work between the first and the last; a probe per record costs ~nothing
        assert handled[-1] - handled[0] < 4.0
    finally:
        consumer.stop()
