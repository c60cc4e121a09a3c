"""Contract events make a round trip through the real broker with both Kafka clients we use."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bus.admin import create_topics
from bus.clients import make_consumer, make_producer
from contracts.events import RetrainReason, RetrainRequested, to_json
from contracts.model_types import ModelTypeCatalog
from contracts.topics import Topics
from contracts.validation import validate_outcome
from tests.contracts.test_validation import good_event


def outcome_payloads(count: int) -> list[bytes]:
    return [json.dumps(good_event(subject_id=f"s{i}")).encode() for i in range(count)]


def test_create_topics_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    topics = Topics(topic_prefix)
    first = create_topics(kafka_bootstrap, topics, partitions=2, replication=1)
    second = create_topics(kafka_bootstrap, topics, partitions=2, replication=1)
    assert set(first.values()) == {"created"}
    assert set(second.values()) == {"exists"}
    assert set(first) == set(topics.all())


def test_confluent_kafka_round_trip(kafka_bootstrap: str, topics: Topics, group_id: str) -> None:
    payloads = outcome_payloads(50)
    producer = make_producer(kafka_bootstrap)
    for raw in payloads:
        producer.produce(topics.outcome_events, raw, key=b"k")
    command = RetrainRequested(model_type="calling_score", reason=RetrainReason.MANUAL)
    producer.produce(topics.retrain_commands, to_json(command), key=b"calling_score")
    assert producer.flush(30) == 0

    consumer = make_consumer(kafka_bootstrap, group_id)
    consumer.subscribe([topics.outcome_events, topics.retrain_commands])
    received: dict[str, list[bytes]] = {topics.outcome_events: [], topics.retrain_commands: []}
    try:
        deadline = time.monotonic() + 60
        while sum(map(len, received.values())) < 51 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            received[message.topic()].append(message.value())
    finally:
        consumer.close()
    catalog = ModelTypeCatalog()
    now = datetime.now(UTC)
    validated = [validate_outcome(raw, catalog, now) for raw in received[topics.outcome_events]]
    assert sorted(e.subject_id for e in validated) == sorted(f"s{i}" for i in range(50))
    assert [RetrainRequested.model_validate_json(v) for v in received[topics.retrain_commands]] == [
        command
    ]


def test_aiokafka_round_trip(kafka_bootstrap: str, topics: Topics, group_id: str) -> None:
    payloads = outcome_payloads(20)

    async def scenario() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for raw in payloads:
                await producer.send_and_wait(topics.outcome_events, raw, key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topics.outcome_events,
            bootstrap_servers=kafka_bootstrap,
            group_id=group_id,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            async with asyncio.timeout(60):
                while len(values) < len(payloads):
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        values.extend(r.value for r in records)
        finally:
            await consumer.stop()
        return values

    values = asyncio.run(scenario())
    catalog = ModelTypeCatalog()
    now = datetime.now(UTC)
    ids = {str(validate_outcome(v, catalog, now).event_id) for v in values}
    expected = {str(uuid.UUID(json.loads(p)["event_id"])) for p in payloads}
    assert ids == expected
