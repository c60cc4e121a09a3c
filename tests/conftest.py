"""Session fixtures: one real Kafka broker per test session, a unique topic prefix per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import local_broker
from bus.admin import create_topics
from bus.local_broker import free_port
from contracts.topics import Topics


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "full_only(reason): a chaos scenario run only by `make chaos` (full size)"
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker: KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else a local JVM broker."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    layout = local_broker.ClusterLayout(tmp_path_factory.mktemp("kafka"), 1, free_port())
    try:
        bootstrap = local_broker.up(layout, timeout=180)
    except local_broker.BrokerError as exc:
        # A broker that cannot be had is a failure, never a skip.
        pytest.fail(f"no Kafka broker for the test session: {exc}", pytrace=False)
    os.environ["RELEARN_TEST_BROKER_DIR"] = str(layout.base_dir)
    try:
        yield bootstrap
    finally:
        local_broker.down(layout)


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def topics(kafka_bootstrap: str, topic_prefix: str) -> Topics:
    """The contract's topics under a fresh prefix, created on the session broker."""
    named = Topics(topic_prefix)
    create_topics(kafka_bootstrap, named, partitions=4, replication=1)
    return named


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
