"""The HTTP API over a real SQLite store (Kafka off): shapes, auth, bad input, artifacts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contracts.events import RegistryEventOccurred, RegistryEventType
from registry.routing import route
from tests.registry.conftest import AUTH, make_deployment, service_of

MT = "calling_score"


@pytest.fixture
def two_versions(client: TestClient, artifact_dir: Path) -> None:
    for seed in (0, 1):
        result = service_of(client).register_deployment(make_deployment(artifact_dir, seed=seed))
        assert result.outcome == "applied"


def test_models_versions_and_route_shapes(client: TestClient, two_versions: None) -> None:
    models = {m["model_type"]: m for m in client.get("/models").json()}
    assert models[MT] == {
        "model_type": MT,
        "production": {"version": "v1.0", "weight": 0.9},
        "staging": [{"version": "v1.1", "weight": 0.1}],
        "weights": {"v1.0": 0.9, "v1.1": 0.1},
    }
    assert models["outcome_prediction"]["production"] is None
    versions = client.get(f"/models/{MT}/versions").json()
    assert [v["version"] for v in versions] == ["v1.0", "v1.1"]
    one = client.get(f"/models/{MT}/versions/v1.1").json()
    assert set(one) >= {
        "model_type",
        "version",
        "status",
        "weight",
        "metrics",
        "baseline_metrics",
        "lineage",
        "sha256",
        "artifact_uri",
        "created_at",
        "deployment_id",
        "command_id",
    }
    assert one["status"] == "staging" and one["metrics"]["test_loss"] == 0.025
    for subject in ("a", "b", "c", "d"):
        routed = client.get(f"/models/{MT}/route", params={"subject_id": subject}).json()
        assert routed["version"] == route({"v1.0": 0.9, "v1.1": 0.1}, MT, subject)
        assert (
            routed["sha256"]
            == client.get(f"/models/{MT}/versions/{routed['version']}").json()["sha256"]
        )


def test_route_before_any_version(client: TestClient) -> None:
    routed = client.get(f"/models/{MT}/route", params={"subject_id": "s"}).json()
    assert routed["version"] is None and routed["sha256"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/models/nope/versions",
        f"/models/{MT}/versions/v9.9",
        "/models/nope/route?subject_id=s",
        f"/models/{MT}/versions/v9.9/artifact",
    ],
)
def test_unknown_type_or_version_is_404(client: TestClient, two_versions: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and response.json()["detail"]


def test_route_needs_a_subject(client: TestClient) -> None:
    assert client.get(f"/models/{MT}/route").status_code == 422


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", f"/models/{MT}/versions/v1.1/promote", None),
        ("POST", f"/models/{MT}/versions/v1.1/rollback", None),
        ("PUT", f"/models/{MT}/weights", {"weights": {"v1.0": 1.0}}),
        ("POST", f"/models/{MT}/retrain", None),
    ],
)
def test_mutations_need_the_token(
    client: TestClient, two_versions: None, method: str, path: str, body: dict | None
) -> None:
    missing = client.request(method, path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.request(method, path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert client.get(f"/models/{MT}").json()["weights"] == {"v1.0": 0.9, "v1.1": 0.1}


@pytest.mark.parametrize(
    "weights",
    [
        {"v1.0": 1.2, "v1.1": -0.2},
        {"v1.0": 0.5, "v1.1": 0.2},
        {"v1.0": "lots"},
        {},
    ],
)
def test_bad_weights_are_422(client: TestClient, two_versions: None, weights: dict) -> None:
    response = client.put(f"/models/{MT}/weights", json={"weights": weights}, headers=AUTH)
    assert response.status_code == 422
    assert client.get(f"/models/{MT}").json()["weights"] == {"v1.0": 0.9, "v1.1": 0.1}


@pytest.mark.parametrize("client", ["sqlite", "postgresql"], indirect=True)
def test_operator_flow_ramp_promote_rollback(client: TestClient, two_versions: None) -> None:
    ramp = client.post(
        f"/models/{MT}/versions/v1.1/promote",
        headers=AUTH,
        json={"weights": {"v1.1": 0.5, "v1.0": 0.5}},
    )
    assert ramp.status_code == 200 and ramp.json()["model"]["weights"] == {"v1.0": 0.5, "v1.1": 0.5}
    full = client.post(f"/models/{MT}/versions/v1.1/promote", headers=AUTH).json()["model"]
    assert full["production"] == {"version": "v1.1", "weight": 1.0} and full["staging"] == []
    assert client.get(f"/models/{MT}/versions/v1.0").json()["status"] == "archived"
    back = client.post(f"/models/{MT}/versions/v1.1/rollback", headers=AUTH).json()["model"]
    assert back["production"] == {"version": "v1.0", "weight": 1.0}
    again = client.post(f"/models/{MT}/versions/v1.1/promote", headers=AUTH)
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"
    types = [
        RegistryEventOccurred.model_validate_json(r.payload).type
        for r in service_of(client).store.unsent_events()
    ]
    assert types[-5:] == [
        RegistryEventType.TRAFFIC_CHANGED,
        RegistryEventType.VERSION_PROMOTED,
        RegistryEventType.VERSION_ARCHIVED,
        RegistryEventType.VERSION_ROLLED_BACK,
        RegistryEventType.VERSION_PROMOTED,
    ]


def test_artifact_download_etag_and_tamper(client: TestClient, two_versions: None) -> None:
    path = f"/models/{MT}/versions/v1.0/artifact"
    response = client.get(path)
    sha = hashlib.sha256(response.content).hexdigest()
    assert response.status_code == 200 and response.headers["etag"] == f'"{sha}"'
    assert sha == client.get(f"/models/{MT}/versions/v1.0").json()["sha256"]
    assert client.get(path, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    file = Path(client.get(f"/models/{MT}/versions/v1.0").json()["artifact_uri"][len("file://") :])
    file.write_bytes(b"\x00" * len(response.content))  # changed on disk: never served
    tampered = client.get(path)
    assert tampered.status_code == 409 and tampered.json()["code"] == "sha256_mismatch"


def test_sha_mismatch_and_escaping_paths_are_rejected(
    client: TestClient, artifact_dir: Path, tmp_path: Path
) -> None:
    service = service_of(client)
    good = make_deployment(artifact_dir)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(Path(good.artifact_uri[len("file://") :]).read_bytes())
    link = artifact_dir / "link.onnx"
    os.symlink(outside, link)
    cases = {
        "sha256_mismatch": good.model_copy(update={"deployment_id": "d1", "sha256": "0" * 64}),
        "path_escape": good.model_copy(
            update={"deployment_id": "d2", "artifact_uri": outside.as_uri()}
        ),
        "path_escape ": good.model_copy(
            update={"deployment_id": "d3", "artifact_uri": f"file://{artifact_dir}/../outside.onnx"}
        ),
        "path_escape  ": good.model_copy(
            update={"deployment_id": "d4", "artifact_uri": link.as_uri()}
        ),
        "unsupported_uri": good.model_copy(
            update={"deployment_id": "d5", "artifact_uri": "http://x/m.onnx"}
        ),
        "unsupported_uri ": good.model_copy(
            update={"deployment_id": "d9", "artifact_uri": f"file://{artifact_dir}/a%00b.onnx"}
        ),
        "missing_artifact": good.model_copy(
            update={"deployment_id": "d6", "artifact_uri": (artifact_dir / "gone.onnx").as_uri()}
        ),
        "signature_mismatch": good.model_copy(
            update={"deployment_id": "d7", "input_shape": [None, 5]}
        ),
        "unknown_model_type": good.model_copy(update={"deployment_id": "d8", "model_type": "nope"}),
    }
    for code, deployed in cases.items():
        assert service.register_deployment(deployed).outcome == "rejected", code
    events = [
        RegistryEventOccurred.model_validate_json(r.payload) for r in service.store.unsent_events()
    ]
    assert [e.type for e in events] == [RegistryEventType.ARTIFACT_REJECTED] * len(cases)
    assert [e.reason for e in events] == [code.strip() for code in cases]
    assert client.get(f"/models/{MT}/versions").json() == []
    assert client.get(f"/models/{MT}/route", params={"subject_id": "s"}).json()["version"] is None


def test_health_ready_metrics_openapi(client: TestClient, two_versions: None) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    text = client.get("/metrics").text
    assert 'relearn_registry_versions_registered_total{model_type="calling_score"} 2.0' in text
    paths = client.get("/openapi.json").json()["paths"]
    assert "/models/{model_type}/versions/{version}/promote" in paths


def test_a_reason_too_long_to_publish_is_a_422(client: TestClient, two_versions: None) -> None:
    """The reason travels in registry-events; an unbounded one could outgrow what the outbox can
    publish and stall it."""
    answer = client.post(
        f"/models/{MT}/versions/v1.1/rollback", headers=AUTH, json={"reason": "r" * 1_001}
    )
    assert answer.status_code == 422
    assert client.get(f"/models/{MT}/versions/v1.1").json()["status"] == "staging"


def test_an_action_on_a_model_type_longer_than_any_is_a_422(client: TestClient) -> None:
    """The chaos fuzz test found a 65-character model type in the path made the command fail
    to build: a 500."""
    long_type = "m" * 65
    actions = [
        ("post", f"/models/{long_type}/versions/v1.0/promote", None),
        ("post", f"/models/{long_type}/versions/v1.0/rollback", None),
        ("put", f"/models/{long_type}/weights", {"weights": {"v1.0": 1.0}}),
    ]
    for method, path, body in actions:
        response = client.request(method, path, json=body, headers=AUTH)
        assert response.status_code == 422, (path, response.text)
