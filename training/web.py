"""The trainer's web port: /metrics, /livez and /readyz (docs/metrics.md), served on a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
from confluent_kafka import Producer
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from training.metrics import TrainerMetrics

OK = "ok"
Check = Callable[[], str]  # "ok", or why not


def broker_check(producer: Producer, timeout: float = 2.0) -> Check:
    def check() -> str:
        try:
            producer.list_topics(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means the broker is not reachable
            return f"unreachable: {exc}"
        return OK

    return check


def consumer_check(consuming: threading.Event) -> Check:
    return lambda: OK if consuming.is_set() else "the retrain-commands consumer is not running"


def registry_check(registry_url: str, timeout: float = 2.0) -> Check:
    """The registry the gate reads production from (not checked when the gate does without)."""
    url = f"{registry_url.rstrip('/')}/healthz"

    def check() -> str:
        try:
            status = httpx.get(url, timeout=timeout).status_code
        except httpx.HTTPError as exc:
            return f"unreachable: {exc}"
        return OK if status == 200 else f"GET {url}: HTTP {status}"

    return check


def create_app(metrics: TrainerMetrics, checks: dict[str, Check]) -> FastAPI:
    app = FastAPI(title="relearn trainer", version="0.1.0", docs_url=None, redoc_url=None)

    @app.get("/livez")
    def livez() -> dict[str, str]:
        """The process answers; no dependency is checked (an outage must not restart it)."""
        return {"status": OK}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        results = {name: check() for name, check in checks.items()}
        ready = all(result == OK for result in results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
