"""The local stack: a broker that answers (started when none does) and the contract's topics."""

from __future__ import annotations

import logging
from pathlib import Path

from bus import local_broker
from bus.admin import create_topics
from bus.clients import broker_count
from bus.settings import KafkaSettings

log = logging.getLogger(__name__)

LOCAL_KAFKA_DIR = Path(".relearn") / "kafka"


def ensure_broker(settings: KafkaSettings, kafka_dir: Path = LOCAL_KAFKA_DIR) -> bool:
    """Make sure a broker answers at settings.bootstrap_servers; returns True if we started one."""
    if broker_count(settings.bootstrap_servers, timeout=3.0) > 0:
        return False
    first = settings.bootstrap_servers.split(",")[0]
    host, _, port = first.rpartition(":")
    if host not in {"127.0.0.1", "localhost"}:
        raise local_broker.BrokerError(
            f"no Kafka broker answers at {settings.bootstrap_servers}, and it is not local"
        )
    layout = local_broker.ClusterLayout(kafka_dir.resolve(), 1, int(port))
    local_broker.write_layout(layout)
    log.info("no broker answers at %s: starting a local one", settings.bootstrap_servers)
    local_broker.up(layout)
    return True


def ensure_topics(settings: KafkaSettings) -> dict[str, str]:
    return create_topics(
        settings.bootstrap_servers,
        settings.topics,
        settings.topic_partitions,
        settings.topic_replication,
    )
