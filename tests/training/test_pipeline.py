"""The pipeline end to end without Kafka: gate against a real production ONNX, fault injection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from contracts.model_types import BUILT_IN, ModelTypeCatalog
from tests.training.conftest import dataset_of
from training.errors import (
    GateUnavailableError,
    RegistryUnavailableError,
    UnknownModelTypeError,
    WorseThanProductionError,
)
from training.export import score_onnx
from training.faults import FileFaults
from training.gate import GateOutcome, GateUnavailablePolicy
from training.pipeline import PipelineConfig, TrainingPipeline
from training.production import FixedProductionSource, ProductionModel

CATALOG = ModelTypeCatalog(BUILT_IN)


class UnreachableRegistry:
    def __init__(self, answer_after: int | None = None) -> None:
        self.calls = 0
        self.answer_after = answer_after  # failures before it answers "no production"

    def production_model(self, model_type: str) -> ProductionModel | None:
        self.calls += 1
        if self.answer_after is not None and self.calls > self.answer_after:
            return None
        raise RegistryUnavailableError("registry http://127.0.0.1:1 unreachable: refused")


def _pipeline(
    config: PipelineConfig, production: object = None, **kwargs: object
) -> TrainingPipeline:
    source = production if production is not None else FixedProductionSource()
    return TrainingPipeline(CATALOG, config, source, **kwargs)  # type: ignore[arg-type]


def test_unknown_model_type(quick_config: PipelineConfig) -> None:
    with pytest.raises(UnknownModelTypeError, match="'nope'.*calling_score"):
        _pipeline(quick_config).spec_for("nope")


def test_gate_rejects_a_worse_candidate_than_a_real_production_model(
    quick_config: PipelineConfig,
) -> None:
    dataset = dataset_of("calling_score", 600)
    spec = CATALOG.get("calling_score")
    assert spec is not None
    strong = dataclasses.replace(
        quick_config, hyper=dataclasses.replace(quick_config.hyper, max_epochs=40)
    )
    production = _pipeline(strong).build(spec, dataset)
    assert (
        production.gate.outcome is GateOutcome.NO_PRODUCTION and production.baseline_metrics is None
    )

    weak = dataclasses.replace(
        quick_config, hyper=dataclasses.replace(quick_config.hyper, max_epochs=1)
    )
    source = FixedProductionSource(ProductionModel("v1.0", production.proven.onnx))
    with pytest.raises(WorseThanProductionError) as caught:
        _pipeline(weak, source).build(spec, dataset)
    assert caught.value.reason.value == "worse_than_production"
    assert "v1.0" in caught.value.detail
    baseline = caught.value.context["baseline_metrics"]
    assert baseline["version"] == "v1.0"
    # the gate evaluated production on the same test rows: the same loss as it recorded itself
    assert baseline["test_loss"] == pytest.approx(production.metrics["test_loss"], rel=1e-5)
    assert caught.value.context["metrics"]["test_loss"] > baseline["test_loss"] * 1.05

    # and the same strong training passes against that production, with baseline metrics
    again = _pipeline(strong, source).build(spec, dataset)
    assert again.gate.outcome is GateOutcome.PASSED
    assert again.baseline_metrics == {"test_loss": baseline["test_loss"], "version": "v1.0"}


def _policy(config: PipelineConfig, policy: GateUnavailablePolicy) -> PipelineConfig:
    return dataclasses.replace(
        config, gate_unavailable_policy=policy, gate_attempts=3, gate_retry_seconds=0.25
    )


def test_gate_unavailable_is_retried_then_rejected_by_default(
    quick_config: PipelineConfig,
) -> None:
    assert PipelineConfig().gate_unavailable_policy is GateUnavailablePolicy.REJECT
    dataset = dataset_of("outcome_prediction", 300)
    spec = CATALOG.get("outcome_prediction")
    assert spec is not None
    config = _policy(quick_config, GateUnavailablePolicy.REJECT)
    registry = UnreachableRegistry()
    slept: list[float] = []
    pipeline = TrainingPipeline(CATALOG, config, registry, sleep=slept.append)
    with pytest.raises(GateUnavailableError) as caught:
        pipeline.build(spec, dataset)
    assert caught.value.reason.value == "gate_unavailable"
    assert registry.calls == 3 and slept == [0.25, 0.25]
    assert "registry_unreachable" in caught.value.detail and "3 times" in caught.value.detail
    assert caught.value.context["metrics"]["gate"] == "gate_unavailable"

    # a registry back within the bound, and without production: nothing to compare, deploy
    back = UnreachableRegistry(answer_after=2)
    candidate = TrainingPipeline(CATALOG, config, back, sleep=slept.append).build(spec, dataset)
    assert back.calls == 3 and candidate.gate.outcome is GateOutcome.NO_PRODUCTION

    # a production artifact that cannot score the test rows: rejected too, not retried
    junk = FixedProductionSource(ProductionModel("v3.0", b"not onnx"))
    with pytest.raises(GateUnavailableError) as caught:
        _pipeline(config, junk).build(spec, dataset)
    assert "incompatible_production" in caught.value.detail and "v3.0" in caught.value.detail
    assert caught.value.context["baseline_metrics"]["version"] == "v3.0"


def test_gate_unavailable_deploys_ungated_under_the_deploy_policy(
    quick_config: PipelineConfig,
) -> None:
    dataset = dataset_of("outcome_prediction", 300)
    spec = CATALOG.get("outcome_prediction")
    assert spec is not None
    config = _policy(quick_config, GateUnavailablePolicy.DEPLOY)
    registry = UnreachableRegistry()
    slept: list[float] = []
    candidate = TrainingPipeline(CATALOG, config, registry, sleep=slept.append).build(spec, dataset)
    assert registry.calls == 3 and slept == [0.25, 0.25]
    assert candidate.metrics["gate"] == "registry_unreachable"
    assert "unreachable" in candidate.metrics["gate_detail"]
    assert "passed ungated" in candidate.metrics["gate_detail"]
    junk = FixedProductionSource(ProductionModel("v3.0", b"not onnx"))
    candidate = _pipeline(config, junk).build(spec, dataset)
    assert candidate.gate.outcome is GateOutcome.INCOMPATIBLE_PRODUCTION


def test_fault_injection_perturbs_after_the_gate_and_reproves(
    quick_config: PipelineConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = dataset_of("calling_score", 400)
    spec = CATALOG.get("calling_score")
    assert spec is not None
    clean = _pipeline(quick_config).build(spec, dataset)
    assert "fault_injection" not in clean.metrics and "fault_injected" not in clean.metrics
    (tmp_path / "calling_score.degrade").write_text("1.0")
    faulty = _pipeline(quick_config, faults=FileFaults(tmp_path)).build(spec, dataset)
    assert not (tmp_path / "calling_score.degrade").exists()
    assert faulty.metrics["fault_injection"] is True
    assert faulty.metrics["fault_injected"] == 1.0 and faulty.metrics["degraded_after_gate"]
    assert faulty.fault_injected == 1.0
    assert "fault injection" in caplog.text
    # the gate judged the clean weights; the published test loss is the damaged model's own
    assert faulty.metrics["gated_test_loss"] == clean.metrics["test_loss"]
    assert faulty.metrics["test_loss"] > 3 * clean.metrics["test_loss"]
    assert faulty.proven.sha256 != clean.proven.sha256
    rows = dataset.features[:200]
    targets = dataset.targets[:200]
    clean_error = np.mean((score_onnx(clean.proven.onnx, rows) - targets) ** 2)
    faulty_error = np.mean((score_onnx(faulty.proven.onnx, rows) - targets) ** 2)
    assert faulty_error > 3 * clean_error

    # a fault-enabled trainer marks its models even when no fault file waits
    marked = _pipeline(quick_config, faults=FileFaults(tmp_path)).build(spec, dataset)
    assert marked.metrics["fault_injection"] is True and "fault_injected" not in marked.metrics
    assert marked.metrics["test_loss"] == clean.metrics["test_loss"]
