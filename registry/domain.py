"""The registry's domain objects: what stores return (never ORM rows)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"
    ROLLED_BACK = "rolled_back"
    ARCHIVED = "archived"


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

    def with_state(self, status: Status, weight: float) -> ModelVersion:
        return replace(self, status=status, weight=weight)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `GET /models/{type}/versions/{version}`."""
        return {
            "model_type": self.model_type,
            "version": self.version,
            "status": self.status.value,
            "weight": self.weight,
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "lineage": self.lineage,
            "sha256": self.sha256,
            "artifact_uri": self.artifact_uri,
            "size_bytes": self.size_bytes,
            "created_at": self.created_at.isoformat(),
            "deployment_id": self.deployment_id,
            "command_id": self.command_id,
        }


@dataclass(frozen=True)
class OutboxRecord:
    """A registry event committed with its change and not yet known to be on the topic."""

    id: int
    model_type: str
    payload: bytes
