"""The registry's application service: registrations, commands and reads (no HTTP, no Kafka)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryCommandType,
    RegistryEventType,
)
from contracts.model_types import ModelTypeCatalog
from registry import lifecycle
from registry.artifacts import ArtifactStore
from registry.domain import ModelVersion, Status
from registry.errors import (
    ArtifactRejected,
    InvalidWeights,
    RegistryError,
    UnknownModelType,
    UnknownVersion,
)
from registry.metrics import RegistryMetrics
from registry.routing import RouteTable
from registry.store import ApplyResult, RegistryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Serving:
    expires_at: float
    table: RouteTable
    shas: dict[str, str]


def _now() -> datetime:
    return datetime.now(UTC)


class RegistryService:
    """Everything the registry does, called by the Kafka handlers and the HTTP routers alike."""

    def __init__(
        self,
        store: RegistryStore,
        artifacts: ArtifactStore,
        catalog: ModelTypeCatalog,
        metrics: RegistryMetrics | None = None,
        candidate_weight: float = lifecycle.INITIAL_CANDIDATE_WEIGHT,
        route_cache_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.catalog = catalog
        self.metrics = metrics or RegistryMetrics()
        self.candidate_weight = candidate_weight
        self.route_cache_seconds = route_cache_seconds
        self._serving: dict[str, _Serving] = {}
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called after every committed change (the outbox publisher wakes up on it)."""
        self._listeners.append(listener)

    # -- model-deployed ----------------------------------------------------------------------
    def register_deployment(self, deployment: ModelDeployed) -> ApplyResult:
        """Register the deployed model as a new version, or record why it is refused."""
        outcome = self.store.processed_outcome(deployment.deployment_id)
        if outcome is not None:
            return ApplyResult(duplicate=True, plan=None, outcome=outcome)
        try:
            self._check_deployment(deployment)
        except ArtifactRejected as exc:
            return self._reject(deployment, exc)
        result = self._apply(
            deployment.model_type,
            deployment.deployment_id,
            lambda state: lifecycle.plan_registration(
                state, deployment, _now(), self.candidate_weight
            ),
        )
        if result.plan is not None and result.plan.outcome == lifecycle.DUPLICATE_COMMAND:
            log.warning(
                "deployment ignored model_type=%s deployment_id=%s: command_id=%s already has "
                "a version",
                deployment.model_type,
                deployment.deployment_id,
                deployment.command_id,
            )
        if result.plan is not None and result.plan.insert is not None:
            new = result.plan.insert
            log.info(
                "registered model_type=%s version=%s status=%s weight=%s deployment_id=%s",
                new.model_type,
                new.version,
                new.status,
                new.weight,
                deployment.deployment_id,
            )
        return result

    def _reject(self, deployment: ModelDeployed, exc: ArtifactRejected) -> ApplyResult:
        log.warning(
            "deployment rejected model_type=%s deployment_id=%s reason=%s: %s",
            deployment.model_type,
            deployment.deployment_id,
            exc.code,
            exc.message,
        )
        result = self._apply(
            deployment.model_type,
            deployment.deployment_id,
            lambda state: lifecycle.plan_rejection(
                state,
                deployment.model_type,
                deployment.deployment_id,
                exc.code,
                exc.message,
                _now(),
            ),
        )
        if not result.duplicate:
            self.metrics.deployments_rejected.labels(deployment.model_type, exc.code).inc()
        return result

    def _check_deployment(self, deployment: ModelDeployed) -> None:
        spec = self.catalog.get(deployment.model_type)
        if spec is None:
            raise ArtifactRejected(
                "unknown_model_type", f"{deployment.model_type} is not a configured model type"
            )
        if not deployment.input_shape or deployment.input_shape[-1] != spec.feature_count:
            raise ArtifactRejected(
                "signature_mismatch",
                f"input shape {deployment.input_shape} does not take {spec.feature_count} features",
            )
        self.artifacts.verify(deployment.artifact_uri, deployment.sha256, deployment.size_bytes)

    # -- registry-commands -------------------------------------------------------------------
    def handle_command(self, command: RegistryCommandIssued) -> ApplyResult:
        """Apply a command once; a refusal (RegistryError) is recorded, then re-raised."""
        try:
            return self.execute(command)
        except RegistryError as exc:
            self.store.record_refusal(command.model_type, command.command_id, exc.code, str(exc))
            raise

    def execute(self, command: RegistryCommandIssued) -> ApplyResult:
        self.require_model_type(command.model_type)
        model_type, version, now = command.model_type, command.version, _now()
        reason = command.reason or f"{command.type.value} by {command.issued_by}"
        if command.type is RegistryCommandType.SET_WEIGHTS:
            if command.weights is None:
                raise InvalidWeights("set_weights needs weights")
            weights = command.weights
            return self._apply(
                model_type,
                command.command_id,
                lambda s: lifecycle.plan_set_weights(s, model_type, weights, reason, now),
            )
        if version is None:
            raise UnknownVersion(f"{command.type.value} needs a version")
        if command.type is RegistryCommandType.PROMOTE:
            weights_or_none = command.weights
            return self._apply(
                model_type,
                command.command_id,
                lambda s: lifecycle.plan_promote(
                    s, model_type, version, weights_or_none, reason, now
                ),
            )
        return self._apply(
            model_type,
            command.command_id,
            lambda s: lifecycle.plan_rollback(s, model_type, version, reason, now),
        )

    def _apply(self, model_type: str, message_id: str, planner: Any) -> ApplyResult:
        result = self.store.apply(model_type, message_id, planner)
        if result.duplicate or result.plan is None:
            log.info("duplicate message_id=%s model_type=%s ignored", message_id, model_type)
            return result
        self._serving.pop(model_type, None)
        self._count(model_type, result)
        for listener in self._listeners:
            listener()
        return result

    def _count(self, model_type: str, result: ApplyResult) -> None:
        assert result.plan is not None
        for event in result.plan.events:
            if event.type is RegistryEventType.VERSION_REGISTERED:
                self.metrics.versions_registered.labels(model_type).inc()
            elif event.type is RegistryEventType.VERSION_PROMOTED:
                self.metrics.promotions.labels(model_type).inc()
            elif event.type is RegistryEventType.VERSION_ROLLED_BACK:
                self.metrics.rollbacks.labels(model_type).inc()
            elif event.type is RegistryEventType.TRAFFIC_CHANGED:
                self.metrics.traffic_changes.labels(model_type).inc()

    # -- reads -------------------------------------------------------------------------------
    def require_model_type(self, model_type: str) -> None:
        if model_type not in self.catalog and model_type not in self.store.model_types():
            raise UnknownModelType(f"unknown model type {model_type!r}")

    def overview(self) -> list[dict[str, Any]]:
        """The `GET /models` shape: production, staging and weights per model type."""
        names = sorted(set(self.catalog.names()) | set(self.store.model_types()))
        return [self.summary(name) for name in names]

    def summary(self, model_type: str) -> dict[str, Any]:
        versions = self.store.versions(model_type)
        production = lifecycle.production_of(versions)
        return {
            "model_type": model_type,
            "production": (
                {"version": production.version, "weight": production.weight} if production else None
            ),
            "staging": [
                {"version": v.version, "weight": v.weight}
                for v in versions
                if v.status is Status.STAGING
            ],
            "weights": lifecycle.weights_of(versions),
        }

    def versions(self, model_type: str) -> list[ModelVersion]:
        self.require_model_type(model_type)
        return self.store.versions(model_type)

    def version(self, model_type: str, version: str) -> ModelVersion:
        self.require_model_type(model_type)
        found = self.store.version(model_type, version)
        if found is None:
            raise UnknownVersion(f"{model_type} has no version {version}")
        return found

    def artifact_path(self, model_type: str, version: str) -> tuple[Path, str]:
        """The verified artifact of a version; a file that changed on disk is never served."""
        found = self.version(model_type, version)
        return self.artifacts.verify(
            found.artifact_uri, found.sha256, found.size_bytes
        ), found.sha256

    def route(self, model_type: str, subject_id: str) -> dict[str, Any]:
        """`{model_type, subject_id, bucket, version, sha256}`; version null before any exists."""
        cached = self.route_cached(model_type, subject_id)
        if cached is not None:
            return cached
        self.require_model_type(model_type)
        _revision, rows = self.store.serving(model_type)
        self._serving[model_type] = _Serving(
            expires_at=time.monotonic() + self.route_cache_seconds,
            table=RouteTable({v: w for v, (w, _) in rows.items()}),
            shas={v: sha for v, (_, sha) in rows.items()},
        )
        return self._route_with(self._serving[model_type], model_type, subject_id)

    def route_cached(self, model_type: str, subject_id: str) -> dict[str, Any] | None:
        """`route` from the in-memory table when it is fresh (no I/O), else None."""
        serving = self._serving.get(model_type)
        if serving is None or serving.expires_at < time.monotonic():
            return None
        return self._route_with(serving, model_type, subject_id)

    def _route_with(self, serving: _Serving, model_type: str, subject_id: str) -> dict[str, Any]:
        bucket = serving.table.bucket_of(model_type, subject_id)
        version = serving.table.version_for(bucket)
        self.metrics.routes.labels(model_type).inc()
        return {
            "model_type": model_type,
            "subject_id": subject_id,
            "bucket": bucket,
            "version": version,
            "sha256": serving.shas.get(version) if version else None,
        }

    def weights(self, model_type: str) -> Mapping[str, float]:
        self.require_model_type(model_type)
        return lifecycle.weights_of(self.store.versions(model_type))
