"""Thin constructors for confluent-kafka clients; librdkafka dictionaries are built only here."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    config.update(overrides)
    return config


def consumer_config(bootstrap_servers: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """At-least-once: offsets are stored explicitly after the work is durable."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config


def make_producer(bootstrap_servers: str, **overrides: Any) -> Producer:
    return Producer(producer_config(bootstrap_servers, **overrides))


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(bootstrap_servers, group_id, **overrides))


def make_admin(bootstrap_servers: str, **overrides: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, **overrides})


def broker_count(bootstrap_servers: str, timeout: float = 2.0) -> int:
    """How many brokers the cluster metadata lists (0 when it does not answer)."""
    try:
        # log_level 0: a probe of a broker that is still starting should not spam stderr.
        metadata = make_admin(bootstrap_servers, log_level=0).list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - a probe: any failure means no broker answers yet
        return 0
    return len(metadata.brokers)


def watermark_offsets(
    consumer: Consumer, partition: TopicPartition, deadline_seconds: float = 60.0
) -> tuple[int, int]:
    """(low, high) of one partition, retried while the cluster settles: a topic created a
    moment ago, or a partition whose leader moves, answers "not leader" for a while."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return low, high
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise
            log.info(
                "watermarks of %s[%d] not known yet (%s); retrying",
                partition.topic,
                partition.partition,
                exc,
            )
            time.sleep(0.5)
            try:
                # A client that saw its brokers go away may keep "unknown partition" from a
                # stale metadata cache: ask for the topic again so it learns the new leader.
                consumer.list_topics(partition.topic, timeout=5)
            except KafkaException:
                pass
