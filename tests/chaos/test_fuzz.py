"""Priority 8: hostile payloads against every validator of the internal topics, and schemathesis
against the registry's OpenAPI spec (authorized, so mutating routes are exercised, with Kafka and
a streams worker behind it): no crash, no 5xx. Outcome events are fuzzed in
tests/contracts/test_validation.py already.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bus.admin import create_topics
from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryEventOccurred,
    RetrainRequested,
    TrainingSampleForwarded,
)
from contracts.topics import Topics
from registry.consumers import Poison, _decode
from registry.main import create_app
from registry.settings import RegistrySettings
from streams.registry_follower import RegistryFollower
from tests.chaos.harness import ScenarioFigures, elapsed_since
from tests.registry.conftest import make_deployment
from tests.streams.harness import StreamsWorker, get_json, read_topic, wait_until

INTERNAL: tuple[type[BaseModel], ...] = (
    TrainingSampleForwarded,
    RetrainRequested,
    ModelDeployed,
    RegistryCommandIssued,
    RegistryEventOccurred,
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def payloads(model: type[BaseModel]) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, and objects with the model's own field names and junk values."""
    fields = st.fixed_dictionaries({}, optional={name: json_values for name in model.model_fields})
    as_json = (json_values | fields).map(lambda value: json.dumps(value, allow_nan=True).encode())
    return st.binary(max_size=512) | as_json


@pytest.mark.parametrize("model", INTERNAL, ids=lambda m: m.__name__)
def test_internal_models_only_ever_raise_validation_error(model: type[BaseModel]) -> None:
    @settings(max_examples=300, deadline=None)
    @given(payloads(model))
    def check(raw: bytes) -> None:
        try:
            model.model_validate_json(raw)
        except ValidationError:
            pass

    check()


@pytest.mark.parametrize("model", (ModelDeployed, RegistryCommandIssued), ids=lambda m: m.__name__)
def test_registry_decoding_only_ever_raises_poison(model: type[Any]) -> None:
    @settings(max_examples=300, deadline=None)
    @given(payloads(model))
    def check(raw: bytes) -> None:
        try:
            _decode(model, raw)
        except Poison as exc:
            assert exc.reason

    check()


@settings(max_examples=300, deadline=None)
@given(payloads(RegistryEventOccurred))
def test_streams_registry_follower_never_raises(raw: bytes) -> None:
    RegistryFollower("127.0.0.1:1", "registry-events", "retrain-commands").apply(raw)


@settings(max_examples=300, deadline=None)
@given(payloads(RetrainRequested))
def test_streams_follower_of_manual_retrains_never_raises(raw: bytes) -> None:
    follower = RegistryFollower("127.0.0.1:1", "registry-events", "retrain-commands")
    follower.apply_retrain_command(raw)
    for view in follower.views.values():
        assert view.manual_retrain_at is not None


TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def registry_app(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The registry app on the session broker, its dashboard proxying a real streams worker."""
    base = tmp_path_factory.mktemp("fuzz-registry")
    artifact_dir = base / "artifacts"
    prefix = f"fuzz{uuid.uuid4().hex[:8]}-"
    create_topics(kafka_bootstrap, Topics(prefix), partitions=4, replication=1)
    worker = StreamsWorker.alone(kafka_bootstrap, prefix, base)
    app_settings = RegistrySettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=prefix,
        registry_consumer_group=f"fuzz-{uuid.uuid4().hex[:8]}",
        state_dir=base,
        artifact_dir=artifact_dir,
        api_token=TOKEN,
        registry_route_cache_seconds=0,
        streams_url=worker.url,
    )
    try:
        worker.start().wait_web()
        wait_until(
            lambda: get_json(f"{worker.url}/samples/calling_score") is not None,
            90,
            "streams' tables never answered",
        )
        with TestClient(create_app(app_settings)) as client:
            service = client.app.state.service  # type: ignore[attr-defined]
            for seed in (0, 1):  # something to find: two versions of calling_score
                service.register_deployment(make_deployment(Path(artifact_dir), seed=seed))
            yield client
    finally:
        worker.stop()


@pytest.mark.integration
@pytest.mark.scenario("8 schemathesis on the registry API", size="ci+full")
def test_registry_api_never_answers_5xx(
    registry_app: TestClient, kafka_bootstrap: str, record_row: Callable[[ScenarioFigures], None]
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", registry_app.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    began = time.monotonic()
    calls: Counter[int] = Counter()
    retrains: list[str] = []  # command ids the retrain route answered 202 with

    for operation in operations:

        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(operation.as_strategy(), st.booleans(), st.sampled_from(["v1.0", "v1.1", "v9.9"]))
        def check(case: Any, known_type: bool, version: str) -> None:
            # half the cases address the model type that exists, so routes get past the 404
            if known_type and case.path_parameters and "model_type" in case.path_parameters:
                case.path_parameters["model_type"] = "calling_score"
                if "version" in case.path_parameters:
                    case.path_parameters["version"] = version
            try:
                response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
            except httpx.InvalidURL:
                reject()  # a control character the HTTP client itself refuses to send
            calls[response.status_code] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code} {response.text}"
            )
            if case.method == "POST" and case.path.endswith("/retrain"):
                if response.status_code == 202:
                    retrains.append(response.json()["command_id"])

        check()
    assert retrains, "no retrain was accepted: the Kafka path was never exercised"
    topic = registry_app.app.state.settings.topics.retrain_commands  # type: ignore[attr-defined]
    found = Counter(
        orjson.loads(m.value())["command_id"] for m in read_topic(kafka_bootstrap, topic)
    )
    lost = len(set(retrains) - set(found))
    # A duplicate is a command on the topic that no 202 answered (a retrain nobody asked for).
    # The outbox publishes at least once (every reader de-duplicates on command_id), but only a
    # crash between publish and mark may re-send, and nothing crashes here: schemathesis runs
    # the app's lifespan a second time, so two instances share the outbox, as two registries on
    # one database do; the outbox's publishing lock keeps them from both sending a row.
    resent = sum(n - 1 for n in found.values() if n > 1)
    doubled = len(set(found) - set(retrains))
    assert (lost, doubled, resent) == (0, 0, 0), (lost, doubled, resent)
    record_row(
        ScenarioFigures(
            sum(calls.values()),
            f"{len(operations)} operations, authorized, Kafka and streams behind",
            lost,
            doubled,
            None,
            notes=(
                f"status codes {dict(sorted(calls.items()))}; no 5xx; lost/duplicated: the "
                f"{len(retrains)} retrain command ids answered 202 vs retrain-commands; "
                f"re-sent with the same id {resent}"
            ),
            seconds=elapsed_since(began),
        )
    )
