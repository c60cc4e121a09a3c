"""Operator actions (bearer token): promote, rollback, set weights, request a retrain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from contracts.events import RegistryCommandIssued, RegistryCommandType
from registry.api.deps import KafkaEnabled, ModelTypePath, Operator, Service
from registry.api.schemas import PromoteIn, RollbackIn, WeightsIn
from registry.views import ActionOut, RetrainOut

router = APIRouter(prefix="/models", tags=["actions"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no bearer token"},
    403: {"description": "wrong bearer token"},
    404: {"description": "unknown model type or version"},
}


def _run(service: Service, command: RegistryCommandIssued) -> ActionOut:
    service.execute(command)
    return ActionOut(command_id=command.command_id, model=service.summary(command.model_type))


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
    model_type: ModelTypePath,
    version: str,
    service: Service,
    operator: Operator,
    body: Annotated[PromoteIn | None, Body()] = None,
) -> ActionOut:
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
    model_type: ModelTypePath,
    version: str,
    service: Service,
    operator: Operator,
    body: Annotated[RollbackIn | None, Body()] = None,
) -> ActionOut:
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
def set_weights(
    model_type: ModelTypePath, body: WeightsIn, service: Service, operator: Operator
) -> ActionOut:
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
    _kafka: KafkaEnabled,
) -> RetrainOut:
    """A manual RetrainRequested, committed to the registry's outbox and published from it to
    retrain-commands (the trainer picks it up); 202 once committed."""
    return service.request_retrain(model_type)
