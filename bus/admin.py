"""Creates the contract's topics idempotently."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic
from confluent_kafka.error import KafkaError

from bus.clients import make_admin
from contracts.topics import Topics

log = logging.getLogger(__name__)


def create_topics(
    bootstrap_servers: str,
    topics: Topics,
    partitions: int,
    replication: int,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create every topic of the contract; returns name -> 'created' | 'exists'."""
    return ensure_topics(
        bootstrap_servers, dict.fromkeys(topics.all(), {}), partitions, replication, timeout
    )


def ensure_topics(
    bootstrap_servers: str,
    configs: dict[str, dict[str, str]],
    partitions: int,
    replication: int,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create each named topic with its extra configs unless it exists; name -> outcome."""
    admin = make_admin(bootstrap_servers)
    base = {"min.insync.replicas": str(min(2, replication))}
    wanted = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication,
            config={**base, **extra},
        )
        for name, extra in configs.items()
    ]
    outcome: dict[str, str] = {}
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    log.info("topics ready: %s", outcome)
    return outcome
