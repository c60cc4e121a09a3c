"""Dataset to deployable candidate: split, train, gate, (fault), export, prove; and the events."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
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
    GateUnavailableError,
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
from training.faults import FAULT_INJECTION_FLAG, FaultHooks, degrade
from training.fit import EpochCallback, FitResult, fit
from training.gate import (
    GateOutcome,
    GateUnavailablePolicy,
    GateVerdict,
    judge,
    skipped,
    unavailable,
)
from training.hyperparameters import Hyperparameters
from training.losses import evaluation_loss
from training.network import ScoringNetwork, predict
from training.production import ProductionModel, ProductionModelSource
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
    gate_unavailable_policy: GateUnavailablePolicy = GateUnavailablePolicy.REJECT
    gate_attempts: int = 3  # registry reads for the gate, gate_retry_seconds apart
    gate_retry_seconds: float = 2.0
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
        faults: FaultHooks | None = None,
        exporter: Exporter = export_onnx,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.production = production
        self.faults = faults  # None in production: no fault file is ever read
        self.exporter = exporter
        self._sleep = sleep

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
        if self.faults is not None:
            # Every model of a fault-enabled trainer says so, damaged or not: the registry
            # keeps it with the version, and the start-up check reads it back.
            metrics[FAULT_INJECTION_FLAG] = True

        started = time.perf_counter()
        gate = self.gate(spec, split, float(metrics["test_loss"]))
        timings["gate"] = time.perf_counter() - started
        metrics["gate"] = gate.outcome.value
        metrics["gate_detail"] = gate.detail
        log.info("gate model_type=%s outcome=%s %s", spec.name, gate.outcome, gate.detail)
        if not gate.deploy:
            baseline = {"test_loss": gate.production_loss, "version": gate.production_version}
            error = (
                GateUnavailableError
                if gate.outcome is GateOutcome.UNAVAILABLE
                else WorseThanProductionError
            )
            raise error(gate.detail, context={"metrics": metrics, "baseline_metrics": baseline})

        network = result.network
        fault = self.faults.degrade_strength(spec.name) if self.faults is not None else None
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
        if fault is not None:
            # The gate judged the undamaged weights; the published test loss is the damaged
            # model's own, on the same rows, and the gate's figure is kept beside it.
            metrics["degraded_after_gate"] = True
            metrics["gated_test_loss"] = metrics["test_loss"]
            metrics["test_loss"] = evaluation_loss(expected, split.test.targets, spec.loss)
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
        """Production on the same test rows. No production: pass, noted. Production that cannot
        be compared (registry down after retries, artifact unscorable): the policy decides."""
        policy = self.config.gate_unavailable_policy
        try:
            production = self._production_model(spec.name)
        except RegistryUnavailableError as exc:
            log.warning("gate unavailable model_type=%s policy=%s: %s", spec.name, policy, exc)
            return unavailable(GateOutcome.REGISTRY_UNREACHABLE, candidate_loss, str(exc), policy)
        if production is None:
            return skipped(GateOutcome.NO_PRODUCTION, candidate_loss, "no production version")
        try:
            width = input_width(production.onnx)
            if width != spec.feature_count:
                raise ValueError(f"it takes {width} features, the model type {spec.feature_count}")
            outputs = score_onnx(production.onnx, split.test.features)
        except Exception as exc:  # noqa: BLE001 - production that cannot score these rows is no yardstick
            log.warning(
                "gate unavailable model_type=%s policy=%s: production %s unusable: %s",
                spec.name,
                policy,
                production.version,
                exc,
            )
            return unavailable(
                GateOutcome.INCOMPATIBLE_PRODUCTION,
                candidate_loss,
                f"production {production.version} cannot score the test rows: {exc}",
                policy,
                production.version,
            )
        production_loss = evaluation_loss(outputs, split.test.targets, spec.loss)
        return judge(
            candidate_loss, production_loss, self.config.gate_tolerance, production.version
        )

    def _production_model(self, model_type: str) -> ProductionModel | None:
        """The registry's answer, tried gate_attempts times: a registry restarting for a few
        seconds should not decide a candidate's fate."""
        attempts = self.config.gate_attempts
        for attempt in range(1, attempts):
            try:
                return self.production.production_model(model_type)
            except RegistryUnavailableError as exc:
                log.warning(
                    "gate: registry read %d/%d failed model_type=%s: %s; retrying in %.1f s",
                    attempt,
                    attempts,
                    model_type,
                    exc,
                    self.config.gate_retry_seconds,
                )
                self._sleep(self.config.gate_retry_seconds)
        try:
            return self.production.production_model(model_type)
        except RegistryUnavailableError as exc:
            raise RegistryUnavailableError(f"{exc} (tried {attempts} times)") from exc


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
