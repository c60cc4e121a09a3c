"""The registry's application service: registrations, commands and reads (no HTTP, no Kafka)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryCommandType,
    RegistryEventType,
    RetrainReason,
    RetrainRequested,
    to_json,
)
from contracts.model_types import ModelTypeCatalog
from contracts.serving import INITIAL_CANDIDATE_WEIGHT, MAX_CANDIDATE_WEIGHT, Status
from contracts.topics import TopicName
from registry import lifecycle
from registry.artifacts import ArtifactStore
from registry.domain import ModelVersion
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
from registry.views import ModelSummary, RetrainOut, RouteOut, VersionWeight

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
        candidate_weight: float = INITIAL_CANDIDATE_WEIGHT,
        route_cache_seconds: float = 1.0,
        max_candidate_weight: float = MAX_CANDIDATE_WEIGHT,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.catalog = catalog
        self.metrics = metrics or RegistryMetrics()
        self.candidate_weight = candidate_weight
        self.max_candidate_weight = max_candidate_weight
        self.route_cache_seconds = route_cache_seconds
        self._serving: dict[str, _Serving] = {}
        # Bumped on every change of a model type's weights (ours, or another instance's seen on
        # registry-events): a table read before the bump is never cached after it.
        self._generations: dict[str, int] = {}
        self._ticks = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []

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
                state, deployment, _now(), min(self.candidate_weight, self.max_candidate_weight)
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
                deployment.command_id,
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
            weights, forced = command.weights, command.force
            return self._apply(
                model_type,
                command.command_id,
                lambda s: lifecycle.plan_set_weights(s, model_type, weights, reason, now, forced),
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
        if command.type is RegistryCommandType.KEEP_PRODUCTION:
            return self._apply(
                model_type,
                command.command_id,
                lambda s: lifecycle.plan_keep_production(s, model_type, version, reason, now),
            )
        return self._apply(
            model_type,
            command.command_id,
            lambda s: lifecycle.plan_rollback(s, model_type, version, reason, now),
        )

    def _apply(self, model_type: str, message_id: str, planner: Any) -> ApplyResult:
        def checked(state: Sequence[ModelVersion]) -> lifecycle.Plan:
            # Runs inside the store's transaction, on the state read under its lock: no change
            # commits that leaves two candidates with traffic or production starved. A plan that
            # moves nothing (a rejection, a duplicate) is not checked: in a state an operator
            # forced it would be refused, and a refused rejection never answers its command.
            plan: lifecycle.Plan = planner(state)
            if not plan.forced and (plan.insert is not None or plan.changes):
                lifecycle.check_traffic(plan.apply_to(state), model_type, self.max_candidate_weight)
            return plan

        result = self.store.apply(model_type, message_id, checked)
        if result.duplicate or result.plan is None:
            log.info("duplicate message_id=%s model_type=%s ignored", message_id, model_type)
            return result
        self.invalidate_route(model_type)
        self._count(model_type, result)
        self._notify()
        return result

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()

    # -- manual retrains ---------------------------------------------------------------------
    def request_retrain(self, model_type: str) -> RetrainOut:
        """Commit a manual RetrainRequested to the outbox; the publisher sends it to
        retrain-commands (at least once, like every registry event)."""
        self.require_model_type(model_type)
        production = lifecycle.production_of(self.store.versions(model_type))
        command = RetrainRequested(
            model_type=model_type,
            reason=RetrainReason.MANUAL,
            baseline_version=production.version if production else None,
        )
        self.store.enqueue(model_type, TopicName.RETRAIN_COMMANDS, to_json(command))
        log.info("retrain requested model_type=%s command_id=%s", model_type, command.command_id)
        self._notify()
        return RetrainOut(
            command_id=command.command_id,
            model_type=model_type,
            reason=command.reason.value,
            baseline_version=command.baseline_version,
        )

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

    def overview(self) -> list[ModelSummary]:
        """The `GET /models` answer: production, staging and weights per model type."""
        names = sorted(set(self.catalog.names()) | set(self.store.model_types()))
        return [self.summary(name) for name in names]

    def summary(self, model_type: str) -> ModelSummary:
        versions = self.store.versions(model_type)
        production = lifecycle.production_of(versions)
        return ModelSummary(
            model_type=model_type,
            production=(
                VersionWeight(version=production.version, weight=production.weight)
                if production
                else None
            ),
            staging=[
                VersionWeight(version=v.version, weight=v.weight)
                for v in versions
                if v.status is Status.STAGING
            ],
            weights=lifecycle.weights_of(versions),
        )

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

    def invalidate_route(self, model_type: str) -> None:
        """Forget the cached route table of a model type: its weights changed (here, or on
        another registry instance: the dashboard's follower of registry-events calls this)."""
        self._generations[model_type] = next(self._ticks)
        self._serving.pop(model_type, None)

    def route(self, model_type: str, subject_id: str) -> RouteOut:
        """The version serving this subject; version null before any exists."""
        cached = self.route_cached(model_type, subject_id)
        if cached is not None:
            return cached
        self.require_model_type(model_type)
        generation = self._generations.get(model_type)
        _revision, rows = self.store.serving(model_type)
        serving = _Serving(
            expires_at=time.monotonic() + self.route_cache_seconds,
            table=RouteTable({v: w for v, (w, _) in rows.items()}),
            shas={v: sha for v, (_, sha) in rows.items()},
        )
        # A change committed while we read may be missing from `rows`: answer, but do not cache.
        if self._generations.get(model_type) == generation:
            self._serving[model_type] = serving
        return self._route_with(serving, model_type, subject_id)

    def route_cached(self, model_type: str, subject_id: str) -> RouteOut | None:
        """`route` from the in-memory table when it is fresh (no I/O), else None."""
        serving = self._serving.get(model_type)
        if serving is None or serving.expires_at < time.monotonic():
            return None
        return self._route_with(serving, model_type, subject_id)

    def _route_with(self, serving: _Serving, model_type: str, subject_id: str) -> RouteOut:
        bucket = serving.table.bucket_of(model_type, subject_id)
        version = serving.table.version_for(bucket)
        self.metrics.routes.labels(model_type).inc()
        # Built without validation: every field comes from the table, the hot path stays cheap.
        return RouteOut.model_construct(
            model_type=model_type,
            subject_id=subject_id,
            bucket=bucket,
            version=version,
            sha256=serving.shas.get(version) if version else None,
        )

    def weights(self, model_type: str) -> Mapping[str, float]:
        self.require_model_type(model_type)
        return lifecycle.weights_of(self.store.versions(model_type))

    def route_cache_ages(self) -> dict[str, float]:
        """Seconds since each model type's cached route table was read (a metrics gauge)."""
        now = time.monotonic()
        return {
            model_type: now - (serving.expires_at - self.route_cache_seconds)
            for model_type, serving in list(self._serving.items())
        }
