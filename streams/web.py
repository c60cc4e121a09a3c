"""The streams web port (6066): the table views, /metrics, /livez and /readyz, on FastAPI."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException

from streams import processing, tables
from streams.views import TableViews

log = logging.getLogger(__name__)

OK = "ok"
NOT_READY = {"detail": "tables are still being read, retry"}


class WorkerReadout(Protocol):
    """What the web port may read of a worker (`streams.worker.Worker` is one)."""

    @property
    def views(self) -> TableViews: ...

    @property
    def sample_threshold(self) -> int: ...

    def knows(self, model_type: str) -> bool: ...

    def health(self) -> dict[str, Any]: ...

    def readiness(self) -> dict[str, str]: ...


class Answer(JSONResponse):
    """JSON by orjson, as the views always answered (a NaN becomes null, not an error)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _answer(status: int, body: Any) -> Answer:
    return Answer(body, status_code=status)


def create_app(worker: WorkerReadout, metrics: CollectorRegistry | None = None) -> FastAPI:
    """The routes of DESIGN.md's streams table, plus /rejections, /healthz and the probes;
    `metrics` None: /metrics answers 404 (RELEARN_STREAMS_METRICS=false)."""
    app = FastAPI(
        title="relearn streams",
        version="0.1.0",
        description="Any worker answers for all partitions: it follows the small tables in full.",
        default_response_class=Answer,
    )

    app.include_router(views_router(worker))
    app.include_router(probes_router(worker, metrics))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Answer:
        detail = "not found" if exc.status_code == 404 else exc.detail
        return _answer(exc.status_code, {"detail": detail})

    @app.exception_handler(Exception)
    async def view_failed(request: Request, exc: Exception) -> Answer:
        # a view error is a 500, never a dead server
        log.error("web view %s failed", request.url.path, exc_info=exc)
        return _answer(500, {"detail": "internal error"})

    return app


def views_router(worker: WorkerReadout) -> APIRouter:
    """DESIGN.md's streams views, and /rejections."""
    router = APIRouter(tags=["views"])

    def when_ready(model_type: str | None, build: Any) -> Answer:
        if model_type is not None and not worker.knows(model_type):
            return _answer(404, {"detail": f"unknown model type {model_type!r}"})
        if not worker.views.caught_up:
            return _answer(503, NOT_READY)
        return _answer(200, build())

    @router.get("/performance/{model_type}")
    def performance(model_type: str, days: str = "7") -> Answer:
        """Daily rows of the last `days` days (UTC): sample count, positive outcome rate,
        average prediction and outcome score, per version."""
        if not worker.knows(model_type):
            return _answer(404, {"detail": f"unknown model type {model_type!r}"})
        try:
            window = max(1, int(days))
        except ValueError:
            return _answer(400, {"detail": "days must be a whole number"})
        return when_ready(
            None,
            lambda: processing.performance_rows(
                worker.views.table(tables.PERFORMANCE), model_type, window, datetime.now(UTC)
            ),
        )

    @router.get("/samples/{model_type}")
    def samples(model_type: str) -> Answer:
        """New samples since the last retrain, the retrain in flight, the threshold."""
        return when_ready(
            model_type,
            lambda: processing.samples_view(
                worker.views.table(tables.MODEL_TYPES), model_type, worker.sample_threshold
            ),
        )

    @router.get("/abtest/{model_type}")
    def abtest(model_type: str) -> Answer:
        """The running A/B test: both arms' counts and rates, the statistic, the decision."""
        return when_ready(
            model_type,
            lambda: processing.abtest_view(worker.views.table(tables.MODEL_TYPES), model_type),
        )

    @router.get("/rejections")
    def rejections() -> Answer:
        """Outcome events dead-lettered, by reason, across all partitions."""
        return when_ready(
            None, lambda: processing.rejection_counts(worker.views.table(tables.REJECTIONS))
        )

    return router


def probes_router(worker: WorkerReadout, metrics: CollectorRegistry | None) -> APIRouter:
    """/healthz for people, /livez and /readyz for orchestrators, /metrics for Prometheus."""
    router = APIRouter(tags=["probes"])

    @router.get("/healthz")
    def healthz() -> Answer:
        """What this worker owns and has read (for people; probes use /livez and /readyz)."""
        return _answer(200, {"status": OK, **worker.health()})

    @router.get("/livez")
    def livez() -> Answer:
        """The process answers; no dependency is checked (an outage must not restart it)."""
        return _answer(200, {"status": OK})

    @router.get("/readyz")
    def readyz() -> Answer:
        """The broker reachable, the group's assignment received and its tables restored, the
        followed tables read: else 503 with the reason of each check that fails."""
        checks = worker.readiness()
        ready = all(result == OK for result in checks.values())
        return _answer(200 if ready else 503, {"ready": ready, "checks": checks})

    @router.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        """Prometheus text (docs/metrics.md)."""
        if metrics is None:
            return _answer(404, {"detail": "metrics are off (RELEARN_STREAMS_METRICS=false)"})
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return router
