"""Read routes: model types, versions, artifacts and the route of a subject."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from registry.api.deps import Service
from registry.views import ModelSummary, RouteOut, VersionOut

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=list[ModelSummary])
def list_models(service: Service) -> list[ModelSummary]:
    """Each model type with its production and staging versions and the weight map."""
    return service.overview()


@router.get("/{model_type}", response_model=ModelSummary)
def get_model(model_type: str, service: Service) -> ModelSummary:
    service.require_model_type(model_type)
    return service.summary(model_type)


@router.get("/{model_type}/versions", response_model=list[VersionOut])
def list_versions(model_type: str, service: Service) -> list[VersionOut]:
    return [VersionOut.of(v) for v in service.versions(model_type)]


@router.get("/{model_type}/versions/{version}", response_model=VersionOut)
def get_version(model_type: str, version: str, service: Service) -> VersionOut:
    return VersionOut.of(service.version(model_type, version))


@router.get(
    "/{model_type}/versions/{version}/artifact",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 304: {}},
)
def get_artifact(model_type: str, version: str, service: Service, request: Request) -> Response:
    """The ONNX bytes, ETag = sha256; verified against the sha256 before every download."""
    path, sha256 = service.artifact_path(model_type, version)
    etag = f'"{sha256}"'
    if request.headers.get("if-none-match") in (etag, sha256):
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"{model_type}-{version}.onnx",
        headers={"ETag": etag},
    )


@router.get("/{model_type}/route", response_model=RouteOut)
async def get_route(
    model_type: str,
    subject_id: Annotated[str, Query(min_length=1, max_length=256)],
    service: Service,
) -> Response:
    """The version (and its sha256) serving this subject under the current weights."""
    # The hot path answers from memory on the event loop; only a stale table goes to a thread.
    route = service.route_cached(model_type, subject_id)
    if route is None:
        route = await run_in_threadpool(service.route, model_type, subject_id)
    return Response(route.model_dump_json(), media_type="application/json")
