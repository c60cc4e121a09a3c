"""The registry's probes and its metrics per docs/metrics.md: versions, weights, route cache,
commands applied (on a real broker), and /readyz's 503 with a reason when Kafka is away."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from contracts.events import RegistryCommandIssued, RegistryCommandType, to_json
from contracts.topics import Topics
from registry.main import create_app
from registry.settings import RegistrySettings
from tests.registry.conftest import (
    API_TOKEN,
    AUTH,
    kafkaless_settings,
    make_deployment,
    service_of,
    wait_for,
)
from tests.registry.test_kafka import processed, produce, running_registry

MT = "calling_score"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(client: TestClient) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def client(tmp_path: Path, artifact_dir: Path) -> Iterator[TestClient]:
    """Kafka off, a route cache long enough to watch its age grow."""
    settings = kafkaless_settings(tmp_path, artifact_dir, registry_route_cache_seconds=30)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_versions_by_status_and_weights_follow_the_table(
    client: TestClient, artifact_dir: Path
) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    empty = samples_of(client)
    for status in ("production", "staging", "rolled_back", "archived"):
        assert value(empty, "relearn_registry_versions", model_type=MT, status=status) == 0
    assert not [key for key in empty if key[0] == "relearn_registry_traffic_weight"]
    assert value(empty, "relearn_registry_promotions_total", model_type=MT) == 0

    for seed in (0, 1):
        service_of(client).register_deployment(make_deployment(artifact_dir, seed=seed))
    two = samples_of(client)
    assert value(two, "relearn_registry_versions", model_type=MT, status="production") == 1
    assert value(two, "relearn_registry_versions", model_type=MT, status="staging") == 1
    assert value(two, "relearn_registry_traffic_weight", model_type=MT, version="v1.0") == 0.9
    assert value(two, "relearn_registry_traffic_weight", model_type=MT, version="v1.1") == 0.1
    assert value(two, "relearn_registry_versions_registered_total", model_type=MT) == 2

    assert client.post(f"/models/{MT}/versions/v1.1/rollback", headers=AUTH).status_code == 200
    after = samples_of(client)
    assert value(after, "relearn_registry_versions", model_type=MT, status="rolled_back") == 1
    assert value(after, "relearn_registry_versions", model_type=MT, status="staging") == 0
    # the rolled-back version has no traffic: its series is gone, production holds it all
    assert value(after, "relearn_registry_traffic_weight", model_type=MT, version="v1.1") is None
    assert value(after, "relearn_registry_traffic_weight", model_type=MT, version="v1.0") == 1.0
    assert value(after, "relearn_registry_rollbacks_total", model_type=MT) == 1


def test_route_requests_and_the_route_cache_age(client: TestClient, artifact_dir: Path) -> None:
    service_of(client).register_deployment(make_deployment(artifact_dir, seed=0))
    assert (
        value(samples_of(client), "relearn_registry_route_cache_age_seconds", model_type=MT) is None
    )
    for subject in ("a", "b", "c"):
        assert client.get(f"/models/{MT}/route", params={"subject_id": subject}).status_code == 200
    time.sleep(0.3)
    samples = samples_of(client)
    assert value(samples, "relearn_registry_routes_total", model_type=MT) == 3
    age = value(samples, "relearn_registry_route_cache_age_seconds", model_type=MT)
    assert age is not None and 0.3 <= age < 30  # one read, then served from the cache


def test_readyz_is_503_with_the_reason_when_kafka_is_away(
    tmp_path: Path, artifact_dir: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    settings = RegistrySettings(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed}",
        state_dir=tmp_path,
        artifact_dir=artifact_dir,
        api_token=API_TOKEN,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").status_code == 200
        answer = client.get("/readyz")
        assert answer.status_code == 503
        body = answer.json()
        assert body["ready"] is False and body["checks"]["database"] == "ok"
        assert body["checks"]["kafka"].startswith("error")


@pytest.mark.integration
def test_commands_applied_by_type_and_status_on_the_broker(
    tmp_path: Path, kafka_bootstrap: str, topics: Topics, artifact_dir: Path, group_id: str
) -> None:
    promote = RegistryCommandIssued(
        type=RegistryCommandType.PROMOTE,
        model_type=MT,
        version="v1.1",
        weights={"v1.1": 0.5, "v1.0": 0.5},
        reason="ramp",
    )
    unknown_version = RegistryCommandIssued(
        type=RegistryCommandType.ROLLBACK, model_type=MT, version="v7.7"
    )
    unknown_type = RegistryCommandIssued(
        type=RegistryCommandType.ROLLBACK, model_type="no_such_type", version="v1.0"
    )
    with running_registry(tmp_path, kafka_bootstrap, topics, artifact_dir, group_id) as client:
        assert client.get("/readyz").status_code == 200
        for seed in (0, 1):
            service_of(client).register_deployment(make_deployment(artifact_dir, seed=seed))
        produce(
            kafka_bootstrap,
            topics.registry_commands,
            [(MT.encode(), to_json(c)) for c in (promote, promote, unknown_version, unknown_type)],
        )
        wait_for(lambda: processed(client) >= 4, 60, "registry-commands consumed")
        samples = samples_of(client)
        wait_for(lambda: not service_of(client).store.unsent_events(), 30, "outbox drained")
        unsent = "relearn_registry_outbox_unsent"
        wait_for(lambda: value(samples_of(client), unsent) == 0, 10, "the backlog gauge at 0")
        outbox = samples_of(client)

    applied = "relearn_registry_commands_applied_total"
    promoted = {"model_type": MT, "type": "promote"}
    assert value(samples, applied, status="applied", **promoted) == 1
    assert value(samples, applied, status="duplicate", **promoted) == 1
    assert value(samples, applied, model_type=MT, type="rollback", status="refused") == 1
    assert value(samples, applied, model_type="unknown", type="rollback", status="refused") == 1
    assert value(samples, applied, model_type=MT, type="set_weights", status="applied") == 0
    assert value(samples, "relearn_registry_traffic_weight", model_type=MT, version="v1.1") == 0.5
    # 2 registrations + 1 weight change, each with its events: all published
    published = value(outbox, "relearn_registry_events_published_total")
    assert published is not None and published >= 3
