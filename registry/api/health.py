"""Liveness, readiness (database, Kafka, consumers) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registry.api.deps import Service

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/livez")
def livez() -> dict:
    """The process answers; no dependency is checked (an outage must not restart it)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, service: Service) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        service.store.ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as not ready
        checks["database"] = f"error: {type(exc).__name__}"
    producer = request.app.state.producer
    if producer is not None:
        try:
            producer.list_topics(timeout=2.0)
            checks["kafka"] = "ok"
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as not ready
            checks["kafka"] = f"error: {exc}"
        for consumer in request.app.state.consumers:
            checks[f"consumer:{consumer.topic}"] = "ok" if consumer.healthy else "stopped"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(service: Service) -> PlainTextResponse:
    return PlainTextResponse(
        generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
