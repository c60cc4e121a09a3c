"""FastAPI dependencies of the registry (async: no I/O, so no thread hop): service, Kafka, token."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contracts.events import MAX_NAME_LENGTH
from registry.service import RegistryService

_bearer = HTTPBearer(auto_error=False, description="RELEARN_API_TOKEN")


async def get_service(request: Request) -> RegistryService:
    return request.app.state.service


async def require_kafka(request: Request) -> None:
    """503 when Kafka is disabled: a command committed to the outbox would never be sent."""
    if request.app.state.producer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Kafka is disabled")


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """401 without a bearer token, 403 with a wrong one; returns the caller's name for the log."""
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected: str = request.app.state.api_token
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the bearer token is not valid")
    return "operator"


Service = Annotated[RegistryService, Depends(get_service)]
KafkaEnabled = Annotated[None, Depends(require_kafka)]
Operator = Annotated[str, Depends(require_token)]

# A model type in the path of an action: one longer than any model type can be is a 422, not a
# command that fails to build.
ModelTypePath = Annotated[str, Path(max_length=MAX_NAME_LENGTH)]
