"""The dashboard's HTTP side: the page at `/`, its assets, its history and the streams proxy.

The browser talks only to the registry's origin: streams' views are fetched here, server-side,
and an unreachable streams answers 502 (503 while its partitions are being assigned) with a
JSON notice the page shows, never a blank panel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from registry.api.deps import Service
from registry.dashboard.state import DashboardState

STATIC = Path(str(resources.files("registry.dashboard") / "static"))
ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}

router = APIRouter(tags=["dashboard"])


async def get_dashboard(request: Request) -> DashboardState:
    state: DashboardState | None = getattr(request.app.state, "dashboard", None)
    if state is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the dashboard is not running")
    return state


Dashboard = Annotated[DashboardState, Depends(get_dashboard)]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    return HTMLResponse(
        (STATIC / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"}
    )


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # a fixed list: no path ever reaches the file system from the URL
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name!r}")
    return FileResponse(
        STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"}
    )


@router.get("/dashboard/api/status")
async def dashboard_status(dashboard: Dashboard) -> dict:
    """Whether Kafka and streams answer, for the page's notices."""
    if dashboard.follower is None:
        kafka: dict = {"ok": None, "detail": "Kafka is disabled in this registry"}
    else:
        kafka = dashboard.follower.kafka_status()
    try:
        response = await dashboard.streams.get("/healthz")
        streams = {
            "ok": response.status_code == 200,
            "url": dashboard.streams_url,
            "detail": "ok" if response.status_code == 200 else f"HTTP {response.status_code}",
        }
    except httpx.HTTPError as exc:
        streams = {"ok": False, "url": dashboard.streams_url, "detail": _describe(exc)}
    return {"kafka": kafka, "streams": streams}


@router.get("/dashboard/api/{model_type}/history")
def history(model_type: str, dashboard: Dashboard, service: Service) -> dict:
    """Weight steps, registry events, retrain commands and rejections, oldest first."""
    service.require_model_type(model_type)
    return dashboard.history.snapshot(model_type)


@router.get(
    "/dashboard/api/streams/{view}/{model_type}",
    responses={502: {"description": "streams unreachable"}, 503: {"description": "not ready"}},
)
async def streams_view(
    view: Literal["performance", "samples", "abtest"],
    model_type: str,
    dashboard: Dashboard,
    days: Annotated[int, Query(ge=1, le=366)] = 14,
) -> JSONResponse:
    """streams' `/performance`, `/samples` or `/abtest` view of a model type, fetched server-side."""
    params = {"days": days} if view == "performance" else None
    where = f"{dashboard.streams_url}/{view}/{model_type}"
    try:
        response = await dashboard.streams.get(f"/{view}/{model_type}", params=params)
    except httpx.HTTPError as exc:
        return _notice(
            status.HTTP_502_BAD_GATEWAY,
            "streams_unreachable",
            f"streams does not answer at {where}: {_describe(exc)}",
        )
    try:
        body = response.json()
    except ValueError:
        return _notice(
            status.HTTP_502_BAD_GATEWAY,
            "streams_bad_answer",
            f"streams answered HTTP {response.status_code} without JSON at {where}",
        )
    if response.status_code == 200:
        return JSONResponse(body)
    code = "streams_not_ready" if response.status_code == 503 else "streams_error"
    detail = body.get("detail") if isinstance(body, dict) else None
    return _notice(
        response.status_code if response.status_code < 600 else 502,
        code,
        f"streams answered HTTP {response.status_code} at {where}: {detail or body}",
    )


def _notice(status_code: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "code": code, "source": "streams"}, status_code=status_code
    )


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    return type(exc).__name__
