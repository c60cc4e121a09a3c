"""The gate over the real registry HTTP API (its FastAPI app, SQLite store, Kafka off)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from contracts.model_types import BUILT_IN, ModelTypeCatalog
from registry.main import create_app
from registry.settings import RegistrySettings
from tests.training.conftest import dataset_of
from training.artifacts import LocalArtifactStore
from training.dataset import split_dataset
from training.errors import WorseThanProductionError
from training.gate import GateOutcome
from training.pipeline import PipelineConfig, TrainingPipeline, deployment_event
from training.production import FixedProductionSource, RegistryHttp

CATALOG = ModelTypeCatalog(BUILT_IN)


def test_gate_fetches_production_from_the_registry_and_rejects_a_worse_model(
    tmp_path: Path, quick_config: PipelineConfig
) -> None:
    spec = CATALOG.get("outcome_prediction")
    assert spec is not None
    dataset = dataset_of(spec.name, 600, seed=9)
    strong = dataclasses.replace(
        quick_config, hyper=dataclasses.replace(quick_config.hyper, max_epochs=30)
    )
    weak = dataclasses.replace(
        quick_config, hyper=dataclasses.replace(quick_config.hyper, max_epochs=1)
    )
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    settings = RegistrySettings(
        state_dir=tmp_path, artifact_dir=tmp_path / "artifacts", api_token=SecretStr("t"),
        registry_kafka_enabled=False,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        registry = RegistryHttp("", client=client)
        assert registry.production_model(spec.name) is None
        empty = TrainingPipeline(CATALOG, quick_config, registry).gate(
            spec, split_dataset(dataset, 7), 0.5
        )
        assert empty.outcome is GateOutcome.NO_PRODUCTION

        production = TrainingPipeline(CATALOG, strong, FixedProductionSource()).build(spec, dataset)
        event = deployment_event(
            production, artifacts.put(spec.name, production.proven.onnx), None, None
        )
        client.app.state.service.register_deployment(event)  # type: ignore[attr-defined]
        fetched = registry.production_model(spec.name)
        assert fetched is not None and fetched.version == "v1.0"
        assert fetched.onnx == production.proven.onnx

        with pytest.raises(WorseThanProductionError) as caught:
            TrainingPipeline(CATALOG, weak, registry).build(spec, dataset)
        assert caught.value.context["baseline_metrics"]["version"] == "v1.0"
        assert caught.value.context["baseline_metrics"]["test_loss"] == pytest.approx(
            production.metrics["test_loss"], rel=1e-5
        )


def test_the_gate_url_quotes_what_it_asks_the_registry() -> None:
    """The gate reads through the registry's client: a model type or version is one path segment."""
    import httpx

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"detail": "no such version", "code": "unknown_version"})

    http = httpx.Client(base_url="http://registry", transport=httpx.MockTransport(answer))
    with pytest.raises(LookupError):
        RegistryHttp("http://registry", client=http).version_record("a/b?c", "v1.0")
    assert seen == ["/models/a%2Fb%3Fc/versions/v1.0"]
