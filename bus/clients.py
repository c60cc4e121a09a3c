"""Thin constructors for confluent-kafka clients; librdkafka dictionaries are built only here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerOptions:
    """How a producer differs from the default: the batching and local-queue bounds;
    `message_timeout_ms=0` never gives a message up (a broker outage blocks the caller's next
    flush instead); `java_partitioner`: a key lands where Java clients put it; `error_cb` hears
    client errors and `on_delivery` every delivery report."""

    batch_num_messages: int | None = None
    queue_buffering_max_messages: int | None = None
    queue_buffering_max_kbytes: int | None = None
    message_timeout_ms: int | None = None
    java_partitioner: bool = False
    error_cb: Callable[[KafkaError], None] | None = None
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None


def producer_config(
    bootstrap_servers: str, options: ProducerOptions = ProducerOptions(), **overrides: Any
) -> dict[str, Any]:
    """Idempotent, acks=all, lz4; `overrides` (raw librdkafka keys) is the benchmarks' own
    tuning."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    if options.batch_num_messages is not None:
        config["batch.num.messages"] = options.batch_num_messages
    if options.queue_buffering_max_messages is not None:
        config["queue.buffering.max.messages"] = options.queue_buffering_max_messages
    if options.queue_buffering_max_kbytes is not None:
        config["queue.buffering.max.kbytes"] = options.queue_buffering_max_kbytes
    if options.message_timeout_ms is not None:
        config["message.timeout.ms"] = options.message_timeout_ms
    if options.java_partitioner:
        config["partitioner"] = "murmur2_random"
    if options.error_cb is not None:
        config["error_cb"] = options.error_cb
    if options.on_delivery is not None:
        config["on_delivery"] = options.on_delivery
    config.update(overrides)
    return config


@dataclass(frozen=True)
class ConsumerOptions:
    """How a consumer differs from the at-least-once default.

    `auto_commit=False`: nothing is committed unless the caller commits (a reader that only
    assigns, or a worker that commits itself); `partition_eof`: the end of a partition arrives
    as an event; `quiet`: librdkafka logs nothing (a probe of a broker that may be away);
    `assignment_strategy` e.g. "cooperative-sticky" (a rebalance moves only the partitions that
    change owner); `queued_max_messages_kbytes` bounds the prefetch queue; `error_cb` hears
    client errors (a fatal one ends a worker)."""

    auto_commit: bool = True
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int | None = None
    partition_eof: bool = False
    fetch_wait_max_ms: int | None = None
    queued_max_messages_kbytes: int | None = None
    assignment_strategy: str | None = None
    error_cb: Callable[[KafkaError], None] | None = None
    quiet: bool = False


READER = ConsumerOptions(auto_commit=False)  # assigns partitions itself, commits nothing


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    options: ConsumerOptions = ConsumerOptions(),
    **overrides: Any,
) -> dict[str, Any]:
    """At-least-once: offsets are stored explicitly after the work is durable. `overrides`
    (raw librdkafka keys) is the benchmarks' own tuning."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": options.auto_commit,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    if options.session_timeout_ms is not None:
        config["session.timeout.ms"] = options.session_timeout_ms
    if options.heartbeat_interval_ms is not None:
        config["heartbeat.interval.ms"] = options.heartbeat_interval_ms
    if options.max_poll_interval_ms is not None:
        config["max.poll.interval.ms"] = options.max_poll_interval_ms
    if options.partition_eof:
        config["enable.partition.eof"] = True
    if options.fetch_wait_max_ms is not None:
        config["fetch.wait.max.ms"] = options.fetch_wait_max_ms
    if options.queued_max_messages_kbytes is not None:
        config["queued.max.messages.kbytes"] = options.queued_max_messages_kbytes
    if options.assignment_strategy is not None:
        config["partition.assignment.strategy"] = options.assignment_strategy
    if options.error_cb is not None:
        config["error_cb"] = options.error_cb
    if options.quiet:
        config["log_level"] = 0
    config.update(overrides)
    return config


def make_producer(
    bootstrap_servers: str, options: ProducerOptions = ProducerOptions(), **overrides: Any
) -> Producer:
    return Producer(producer_config(bootstrap_servers, options, **overrides))


def make_consumer(
    bootstrap_servers: str,
    group_id: str,
    options: ConsumerOptions = ConsumerOptions(),
    **overrides: Any,
) -> Consumer:
    return Consumer(consumer_config(bootstrap_servers, group_id, options, **overrides))


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
