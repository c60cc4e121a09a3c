"""SIGKILL the registry process mid-stream: after a restart every deployment is registered once
and every committed registry event reaches the topic (at least once, unique by event_id)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bus.clients import make_consumer
from contracts.events import RegistryEventOccurred, RegistryEventType, new_id, to_json
from contracts.topics import Topics
from registry.store import open_store
from tests.conftest import free_port
from tests.registry.conftest import make_deployment, wait_for
from tests.registry.test_kafka import produce

MT = "calling_score"
DEPLOYMENTS = 120


def start_registry(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "relearn.cli", "registry", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: _answers(port), 60, "registry up")
    return process


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def versions(port: int) -> list[dict]:
    return httpx.get(f"http://127.0.0.1:{port}/models/{MT}/versions", timeout=5).json()


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, group_id: str
) -> None:
    artifact_dir = tmp_path / "artifacts"
    template = make_deployment(artifact_dir)
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RELEARN_TOPIC_PREFIX": topics.prefix,
        "RELEARN_STATE_DIR": str(tmp_path / "state"),
        "RELEARN_ARTIFACT_DIR": str(artifact_dir),
        "RELEARN_API_TOKEN": "t",
        "RELEARN_REGISTRY_CONSUMER_GROUP": group_id,
        "RELEARN_REGISTRY_SESSION_TIMEOUT_MS": "6000",
    }
    log = tmp_path / "registry.log"
    registry = start_registry(env, port, log)
    try:
        deployments = [
            template.model_copy(update={"deployment_id": new_id()}) for _ in range(DEPLOYMENTS)
        ]
        produce(
            kafka_bootstrap, topics.model_deployed, [(MT.encode(), to_json(d)) for d in deployments]
        )
        wait_for(lambda: len(versions(port)) >= 5, 60, "some registrations")
        registry.send_signal(signal.SIGKILL)
        registry.wait(10)
        at_kill = len(open_store(f"sqlite:///{tmp_path / 'state' / 'registry.db'}").versions(MT))
        assert 0 < at_kill < DEPLOYMENTS, f"the kill did not land mid-stream ({at_kill})"
        registry = start_registry(env, port, log)
        wait_for(lambda: len(versions(port)) >= DEPLOYMENTS, 90, "all registrations", 0.5)
        registered = versions(port)
        assert len(registered) == DEPLOYMENTS
        assert sorted(v["deployment_id"] for v in registered) == sorted(
            d.deployment_id for d in deployments
        )
        assert {v["version"] for v in registered} == {f"v1.{i}" for i in range(DEPLOYMENTS)}
        # Every version_registered committed before or after the kill reaches the topic.
        events = registry_events(kafka_bootstrap, topics, {v["version"] for v in registered})
    finally:
        registry.send_signal(signal.SIGKILL)
        registry.wait(10)
    registered_events = [e for e in events if e.type is RegistryEventType.VERSION_REGISTERED]
    assert sorted(e.version or "" for e in registered_events) == sorted(
        v["version"] for v in registered
    )


def registry_events(bootstrap: str, topics: Topics, expected: set[str]) -> list:
    """registry-events, de-duplicated by event_id, once every expected version is registered."""
    consumer = make_consumer(bootstrap, f"reader-{new_id()[:8]}")
    consumer.subscribe([topics.registry_events])
    by_id: dict[str, RegistryEventOccurred] = {}

    def complete() -> bool:
        for message in consumer.consume(100, timeout=0.5):
            if message.error() is None:
                event = RegistryEventOccurred.model_validate_json(message.value())
                by_id[event.event_id] = event
        seen = {e.version for e in by_id.values() if e.type is RegistryEventType.VERSION_REGISTERED}
        return seen >= expected

    try:
        wait_for(complete, 60, "every version_registered on registry-events")
    finally:
        consumer.close()
    return list(by_id.values())
