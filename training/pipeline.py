"""Dataset to deployable candidate: split, train, gate, (fault), export, prove; and the events."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from contracts.events import (
    Lineage,
    ModelDeployed,
    RegistryEventOccurred,
    RegistryEventType,
    TrainingMetrics,
)
from contracts.model_types import ModelTypeCatalog, ModelTypeSpec
from contracts.trainer_config import TrainerKind
from training.artifacts import StoredArtifact
from training.dataset import Dataset, Split, require_samples, split_dataset
from training.errors import (
    RegistryUnavailableError,
    TrainingError,
    UnknownModelTypeError,
    WorseThanProductionError,
)
from training.export import (
    DEFAULT_OPSET,
    PARITY_ATOL,
    PARITY_RTOL,
    ProvenModel,
    export_onnx,
    input_width,
    prove_onnx,
    score_onnx,
)
from training.faults import degrade, take_fault
from training.fit import EpochCallback, FitResult, fit
from training.gate import GateOutcome, GateVerdict, judge, skipped
from training.hyperparameters import Hyperparameters
from training.losses import evaluation_loss
from training.network import ScoringNetwork, predict
from training.production import ProductionModelSource
from training.trainers.external import build_external

log = logging.getLogger(__name__)

Exporter = Callable[[ScoringNetwork, ModelTypeSpec, int], bytes]


def package_version() -> str:
    try:
        return version("relearn")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class PipelineConfig:
    hyper: Hyperparameters = Hyperparameters()
    min_samples: int = 200
    gate_tolerance: float = 0.05
    parity_atol: float = PARITY_ATOL
    parity_rtol: float = PARITY_RTOL
    opset: int = DEFAULT_OPSET


@dataclass(frozen=True)
class Candidate:
    """A trained, gated and proven model, not yet stored or published."""

    spec: ModelTypeSpec
    proven: ProvenModel
    metrics: dict[str, Any]
    gate: GateVerdict
    fault_injected: float | None
    timings: dict[str, float] = field(default_factory=dict)
    trainer: dict[str, Any] | None = None  # a team's trainer: kind, argv or entry, sha256

    @property
    def baseline_metrics(self) -> dict[str, Any] | None:
        if self.gate.production_loss is None:
            return None
        return {"test_loss": self.gate.production_loss, "version": self.gate.production_version}


class TrainingPipeline:
    """The steps of every training run, whatever the data came from (Kafka, a file, a lineage)."""

    def __init__(
        self,
        catalog: ModelTypeCatalog,
        config: PipelineConfig,
        production: ProductionModelSource,
        faults_dir: Path | None = None,
        exporter: Exporter = export_onnx,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.production = production
        self.faults_dir = faults_dir
        self.exporter = exporter

    def spec_for(self, model_type: str) -> ModelTypeSpec:
        spec = self.catalog.get(model_type)
        if spec is None:
            raise UnknownModelTypeError(
                f"unknown model type {model_type!r}; configured: {', '.join(self.catalog.names())}"
            )
        return spec

    def train(
        self, spec: ModelTypeSpec, dataset: Dataset, on_epoch: EpochCallback | None = None
    ) -> tuple[Split, FitResult]:
        """Split and fit only: what a lineage reproduction compares."""
        require_samples(dataset, self.config.min_samples)
        hyper = self.config.hyper
        split = split_dataset(dataset, hyper.seed, hyper.validation_fraction, hyper.test_fraction)
        return split, fit(spec, split, hyper, on_epoch)

    def build(
        self, spec: ModelTypeSpec, dataset: Dataset, on_epoch: EpochCallback | None = None
    ) -> Candidate:
        """Raises a TrainingError (its `.reason` is the rejection code) when not deployable."""
        if spec.trainer.kind is not TrainerKind.BUILTIN:
            return build_external(self, spec, dataset, on_epoch)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        split, result = self.train(spec, dataset, on_epoch)
        timings["train"] = time.perf_counter() - started
        metrics = dict(result.metrics)
        metrics["hyperparameters"] = dataclasses.asdict(self.config.hyper)
        metrics["duplicates_dropped"] = dataset.duplicates
        metrics["malformed_dropped"] = dataset.skipped

        started = time.perf_counter()
        gate = self.gate(spec, split, float(metrics["test_loss"]))
        timings["gate"] = time.perf_counter() - started
        metrics["gate"] = gate.outcome.value
        metrics["gate_detail"] = gate.detail
        log.info("gate model_type=%s outcome=%s %s", spec.name, gate.outcome, gate.detail)
        if not gate.deploy:
            baseline = {"test_loss": gate.production_loss, "version": gate.production_version}
            raise WorseThanProductionError(
                gate.detail, context={"metrics": metrics, "baseline_metrics": baseline}
            )

        network = result.network
        fault = take_fault(self.faults_dir, spec.name) if self.faults_dir else None
        if fault is not None:
            log.warning(
                "fault injection model_type=%s strength=%s: perturbing the trained weights",
                spec.name,
                fault,
            )
            degrade(network, fault, self.config.hyper.seed)
            metrics["fault_injected"] = fault

        started = time.perf_counter()
        expected = predict(network, split.test.features)
        onnx_bytes = self.exporter(network, spec, self.config.opset)
        proven = prove_onnx(
            onnx_bytes,
            spec,
            split.test.features,
            expected,
            atol=self.config.parity_atol,
            rtol=self.config.parity_rtol,
        )
        timings["export_validate"] = time.perf_counter() - started
        metrics["parity_max_abs_diff"] = proven.max_abs_diff
        metrics["parity_rows"] = proven.rows_checked
        return Candidate(spec, proven, metrics, gate, fault, timings)

    def gate(self, spec: ModelTypeSpec, split: Split, candidate_loss: float) -> GateVerdict:
        """Production on the same test rows; without a usable one the candidate passes, noted."""
        try:
            production = self.production.production_model(spec.name)
        except RegistryUnavailableError as exc:
            log.warning("gate skipped model_type=%s: %s", spec.name, exc)
            return skipped(GateOutcome.REGISTRY_UNREACHABLE, candidate_loss, str(exc))
        if production is None:
            return skipped(GateOutcome.NO_PRODUCTION, candidate_loss, "no production version")
        try:
            width = input_width(production.onnx)
            if width != spec.feature_count:
                raise ValueError(f"it takes {width} features, the model type {spec.feature_count}")
            outputs = score_onnx(production.onnx, split.test.features)
        except (
            Exception
        ) as exc:  # a production artifact that cannot score these rows is not a yardstick
            log.warning(
                "gate skipped model_type=%s: production %s unusable: %s",
                spec.name,
                production.version,
                exc,
            )
            return skipped(
                GateOutcome.INCOMPATIBLE_PRODUCTION,
                candidate_loss,
                f"production {production.version} cannot score the test rows: {exc}",
            )
        production_loss = evaluation_loss(outputs, split.test.targets, spec.loss)
        return judge(
            candidate_loss, production_loss, self.config.gate_tolerance, production.version
        )


def deployment_event(
    candidate: Candidate,
    stored: StoredArtifact,
    command_id: str | None,
    lineage: Lineage | None,
    deployment_id: str | None = None,
) -> ModelDeployed:
    proven = candidate.proven
    fields: dict[str, Any] = {}
    if deployment_id is not None:
        fields["deployment_id"] = deployment_id
    return ModelDeployed(
        command_id=command_id,
        model_type=candidate.spec.name,
        artifact_uri=stored.uri,
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        onnx_opset=proven.opset,
        input_name=proven.input_name,
        input_shape=proven.input_shape,
        output_name=proven.output_name,
        output_shape=proven.output_shape,
        metrics=TrainingMetrics.model_validate(candidate.metrics),
        baseline_metrics=candidate.baseline_metrics,
        lineage=lineage,
        **fields,
    )


def rejection_event(
    model_type: str,
    command_id: str | None,
    error: TrainingError,
    extra: dict[str, Any] | None = None,
) -> RegistryEventOccurred:
    """`deployment_rejected` (registry-events): version None, details {command_id, reason, detail}."""
    details: dict[str, Any] = {
        "command_id": command_id,
        "reason": error.reason.value,
        "detail": error.detail,
    }
    details.update(error.context)
    details.update(extra or {})
    return RegistryEventOccurred(
        type=RegistryEventType.DEPLOYMENT_REJECTED,
        model_type=model_type,
        version=None,
        status=None,
        reason=error.reason.value,
        details=details,
    )
