"""The pipeline end to end without Kafka: gate against a real production ONNX, fault injection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from contracts.model_types import BUILT_IN, ModelTypeCatalog
from tests.training.conftest import dataset_of
from training.errors import (
    RegistryUnavailableError,
    UnknownModelTypeError,
    WorseThanProductionError,
)
from training.export import score_onnx
from training.gate import GateOutcome
from training.pipeline import PipelineConfig, TrainingPipeline
from training.production import FixedProductionSource, ProductionModel

CATALOG = ModelTypeCatalog(BUILT_IN)


class UnreachableRegistry:
    def production_model(self, model_type: str) -> ProductionModel | None:
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


def test_unreachable_registry_or_incompatible_production_still_deploys(
    quick_config: PipelineConfig,
) -> None:
    dataset = dataset_of("outcome_prediction", 300)
    spec = CATALOG.get("outcome_prediction")
    assert spec is not None
    candidate = _pipeline(quick_config, UnreachableRegistry()).build(spec, dataset)
    assert candidate.metrics["gate"] == "registry_unreachable"
    assert "unreachable" in candidate.metrics["gate_detail"]
    junk = FixedProductionSource(ProductionModel("v3.0", b"not onnx"))
    candidate = _pipeline(quick_config, junk).build(spec, dataset)
    assert candidate.gate.outcome is GateOutcome.INCOMPATIBLE_PRODUCTION


def test_fault_injection_perturbs_after_the_gate_and_reproves(
    quick_config: PipelineConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = dataset_of("calling_score", 400)
    spec = CATALOG.get("calling_score")
    assert spec is not None
    clean = _pipeline(quick_config).build(spec, dataset)
    (tmp_path / "calling_score.degrade").write_text("1.0")
    faulty = _pipeline(quick_config, faults_dir=tmp_path).build(spec, dataset)
    assert not (tmp_path / "calling_score.degrade").exists()
    assert faulty.metrics["fault_injected"] == 1.0
    assert faulty.fault_injected == 1.0
    assert "fault injection" in caplog.text
    # offline metrics are the clean model's (it "passed validation"); the artifact is not
    assert faulty.metrics["test_loss"] == clean.metrics["test_loss"]
    assert faulty.proven.sha256 != clean.proven.sha256
    rows = dataset.features[:200]
    targets = dataset.targets[:200]
    clean_error = np.mean((score_onnx(clean.proven.onnx, rows) - targets) ** 2)
    faulty_error = np.mean((score_onnx(faulty.proven.onnx, rows) - targets) ** 2)
    assert faulty_error > 3 * clean_error
