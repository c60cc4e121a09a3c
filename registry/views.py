"""What the registry answers, as pydantic models: its service returns them, its API sends them, its client parses them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.serving import Status
from registry.domain import ModelVersion


class _View(BaseModel):
    # Unknown fields are ignored: an older client keeps reading a newer registry.
    model_config = ConfigDict(frozen=True, extra="ignore")


class VersionWeight(_View):
    version: str
    weight: float


class ModelSummary(_View):
    """A model type: its production version, its staging versions and the full weight map."""

    model_type: str
    # Always sent; defaults let a router that needs only the weights read a minimal answer.
    production: VersionWeight | None = None
    staging: list[VersionWeight] = Field(default_factory=list)
    weights: dict[str, float]


class VersionOut(_View):
    """One registered version with its status, weight, metrics and lineage."""

    model_type: str
    version: str
    status: Status
    weight: float
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any] | None
    lineage: dict[str, Any] | None
    sha256: str
    artifact_uri: str
    size_bytes: int
    created_at: datetime
    deployment_id: str | None
    command_id: str | None

    @classmethod
    def of(cls, version: ModelVersion) -> VersionOut:
        return cls.model_validate(version, from_attributes=True)


class RouteOut(_View):
    """The version (and its sha256) serving a subject under the current weights."""

    model_type: str
    subject_id: str
    bucket: int
    version: str | None = Field(description="null before the model type has any version")
    sha256: str | None


class ActionOut(_View):
    """The model type after an operator action, and the id the change was recorded under."""

    command_id: str
    model: ModelSummary


class RetrainOut(_View):
    """A manual retrain command, committed to the registry's outbox for retrain-commands."""

    command_id: str
    model_type: str
    reason: str
    baseline_version: str | None
