"""Request shapes of the registry HTTP API; its answers are `registry.views`."""

from __future__ import annotations

from pydantic import BaseModel, Field


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


class Problem(BaseModel):
    detail: str
    code: str
