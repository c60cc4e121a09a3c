"""Request and response shapes of the registry HTTP API (apart from domain and storage)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class VersionWeight(BaseModel):
    version: str
    weight: float


class ModelSummary(BaseModel):
    model_type: str
    production: VersionWeight | None
    staging: list[VersionWeight]
    weights: dict[str, float]


class VersionOut(BaseModel):
    model_type: str
    version: str
    status: str
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


class RouteOut(BaseModel):
    model_type: str
    subject_id: str
    bucket: int
    version: str | None = Field(description="null before the model type has any version")
    sha256: str | None


class PromoteIn(BaseModel):
    weights: dict[str, float] | None = Field(
        default=None,
        description="a ramp step, e.g. {candidate: 0.5, production: 0.5}; "
        "absent = promote to production at 1.0",
    )
    reason: str = Field("", max_length=1_000)


class RollbackIn(BaseModel):
    reason: str = Field("", max_length=1_000)


class WeightsIn(BaseModel):
    weights: dict[str, float] = Field(description="the full map; versions left out get 0")
    reason: str = Field("", max_length=1_000)
    force: bool = Field(
        False,
        description="override the traffic invariants (a second candidate with traffic, a "
        "candidate above the maximum weight): refused with 409 otherwise",
    )


class ActionOut(BaseModel):
    """The model type after an operator action, and the id the change was recorded under."""

    command_id: str
    model: ModelSummary


class RetrainOut(BaseModel):
    command_id: str
    model_type: str
    reason: str
    baseline_version: str | None


class Problem(BaseModel):
    detail: str
    code: str
