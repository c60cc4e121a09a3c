"""The registry's domain objects: what stores return (never ORM rows)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from contracts.serving import Status
from contracts.topics import TopicName


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model type, with its lifecycle status and traffic weight."""

    model_type: str
    version: str
    status: Status
    weight: float
    sha256: str
    artifact_uri: str
    size_bytes: int
    created_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    deployment_id: str | None = None
    command_id: str | None = None
    # Whether it has ever been production: only such a version may be restored by rolling back
    # production (an archived candidate kept out by its A/B test never served as production).
    was_production: bool = False

    def with_state(self, status: Status, weight: float) -> ModelVersion:
        was_production = self.was_production or status is Status.PRODUCTION
        return replace(self, status=status, weight=weight, was_production=was_production)


@dataclass(frozen=True)
class OutboxRecord:
    """A record committed with its change and not yet known to be on its topic."""

    id: int
    model_type: str
    payload: bytes
    topic: TopicName = TopicName.REGISTRY_EVENTS
