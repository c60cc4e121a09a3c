"""Operator actions (bearer token): promote, rollback, set weights, request a retrain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status

from contracts.events import (
    RegistryCommandIssued,
    RegistryCommandType,
    RetrainReason,
    RetrainRequested,
    to_json,
)
from registry import lifecycle
from registry.api.deps import KafkaProducer, Operator, Service, Settings
from registry.api.schemas import ActionOut, PromoteIn, RetrainOut, RollbackIn, WeightsIn

router = APIRouter(prefix="/models", tags=["actions"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no bearer token"},
    403: {"description": "wrong bearer token"},
    404: {"description": "unknown model type or version"},
}


def _run(service: Service, command: RegistryCommandIssued) -> dict:
    service.execute(command)
    return {"command_id": command.command_id, "model": service.summary(command.model_type)}


@router.post(
    "/{model_type}/versions/{version}/promote",
    response_model=ActionOut,
    responses={
        **_AUTH,
        409: {"description": "illegal transition"},
        422: {"description": "invalid weights"},
    },
)
def promote(
    model_type: str,
    version: str,
    service: Service,
    operator: Operator,
    body: Annotated[PromoteIn | None, Body()] = None,
) -> dict:
    """Promote to production at 1.0, or a ramp step when `weights` gives the version less."""
    body = body or PromoteIn()
    return _run(
        service,
        RegistryCommandIssued(
            type=RegistryCommandType.PROMOTE,
            model_type=model_type,
            version=version,
            weights=body.weights,
            reason=body.reason or "promoted by operator",
            issued_by=operator,
        ),
    )


@router.post(
    "/{model_type}/versions/{version}/rollback",
    response_model=ActionOut,
    responses={**_AUTH, 409: {"description": "illegal transition"}},
)
def rollback(
    model_type: str,
    version: str,
    service: Service,
    operator: Operator,
    body: Annotated[RollbackIn | None, Body()] = None,
) -> dict:
    body = body or RollbackIn()
    return _run(
        service,
        RegistryCommandIssued(
            type=RegistryCommandType.ROLLBACK,
            model_type=model_type,
            version=version,
            reason=body.reason or "rolled back by operator",
            issued_by=operator,
        ),
    )


@router.put(
    "/{model_type}/weights",
    response_model=ActionOut,
    responses={
        **_AUTH,
        409: {
            "description": "traffic_invariant: two candidates with traffic, or production "
            "starved (a candidate above the maximum weight); send force=true to override"
        },
        422: {"description": "invalid weights"},
    },
)
def set_weights(model_type: str, body: WeightsIn, service: Service, operator: Operator) -> dict:
    """The full weight map. Refused (409) when it would leave two staging versions with traffic
    or a candidate above the maximum weight, unless `force` is true."""
    return _run(
        service,
        RegistryCommandIssued(
            type=RegistryCommandType.SET_WEIGHTS,
            model_type=model_type,
            weights=body.weights,
            reason=body.reason or "weights set by operator",
            issued_by=operator,
            force=body.force,
        ),
    )


@router.post("/{model_type}/retrain", response_model=RetrainOut, status_code=202, responses=_AUTH)
def retrain(
    model_type: str,
    _operator: Operator,  # first: 401/403 before anything else is looked at
    service: Service,
    settings: Settings,
    producer: KafkaProducer,
) -> dict:
    """Publish a manual RetrainRequested on retrain-commands (the trainer picks it up)."""
    service.require_model_type(model_type)
    production = lifecycle.production_of(service.versions(model_type))
    command = RetrainRequested(
        model_type=model_type,
        reason=RetrainReason.MANUAL,
        baseline_version=production.version if production else None,
    )
    producer.produce(
        settings.topics.retrain_commands, key=model_type.encode(), value=to_json(command)
    )
    if producer.flush(10) > 0:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "retrain command not delivered")
    return {
        "command_id": command.command_id,
        "model_type": model_type,
        "reason": command.reason.value,
        "baseline_version": command.baseline_version,
    }
