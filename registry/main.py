"""Builds the registry's FastAPI app; its lifespan opens the store and runs the Kafka side."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bus.clients import make_producer
from registry.api import actions, health, models
from registry.artifacts import ArtifactStore
from registry.consumers import (
    InputConsumer,
    counted_dead_letters,
    handle_model_deployed,
    handle_registry_command,
)
from registry.dashboard import router as dashboard
from registry.dashboard.state import start_dashboard, stop_dashboard
from registry.errors import (
    ArtifactRejected,
    IllegalTransition,
    InvalidWeights,
    NotFound,
    RegistryError,
)
from registry.metrics import RegistryMetrics
from registry.outbox import OutboxPublisher
from registry.service import RegistryService
from registry.settings import RegistrySettings
from registry.store import open_store

log = logging.getLogger(__name__)

_ARTIFACT_STATUS = {
    "path_escape": 403,
    "unsupported_uri": 403,
    "missing_artifact": 404,
    "sha256_mismatch": 409,
    "size_mismatch": 409,
}


def _status_of(exc: RegistryError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidWeights):
        return 422
    if isinstance(exc, IllegalTransition):
        return 409
    if isinstance(exc, ArtifactRejected):
        return _ARTIFACT_STATUS.get(exc.code, 409)
    return 400


async def _registry_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegistryError)
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=_status_of(exc))


def create_app(
    settings: RegistrySettings, on_consumer_failure: Callable[[], None] | None = None
) -> FastAPI:
    """The registry app for these settings; nothing connects until the lifespan starts.

    `on_consumer_failure` runs when a consumer thread gives up (the entry point stops the
    process so its supervisor restarts it); without it /readyz reports 503 from then on.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        catalog = settings.model_types()
        metrics = RegistryMetrics(catalog.names())
        store = open_store(settings.resolved_database_url())
        artifact_dir = settings.resolved_artifact_dir()
        artifact_dir.mkdir(parents=True, exist_ok=True)
        service = RegistryService(
            store,
            ArtifactStore(artifact_dir),
            catalog,
            metrics,
            candidate_weight=settings.registry_candidate_weight,
            max_candidate_weight=settings.registry_max_candidate_weight,
            route_cache_seconds=settings.registry_route_cache_seconds,
        )
        app.state.service = service
        metrics.watch(
            lambda: {
                name: store.versions(name)
                for name in sorted(set(catalog.names()) | set(store.model_types()))
            },
            service.route_cache_ages,
        )
        app.state.api_token = settings.resolved_api_token()
        app.state.producer = None
        app.state.consumers = []
        publisher: OutboxPublisher | None = None
        if settings.registry_kafka_enabled:
            topics = settings.topics
            producer = make_producer(settings.bootstrap_servers)
            app.state.producer = producer
            publisher = OutboxPublisher(store, producer, topics, metrics)
            service.on_change(publisher.wake)
            publisher.start()
            dead_letters = counted_dead_letters(
                make_producer(settings.bootstrap_servers), topics.internal_dlq, metrics
            )
            group = settings.registry_consumer_group
            app.state.consumers = [
                InputConsumer(
                    settings.bootstrap_servers,
                    f"{group}.model-deployed",
                    topics.model_deployed,
                    lambda raw: handle_model_deployed(service, raw),
                    dead_letters,
                    metrics,
                    on_fatal=on_consumer_failure,
                    session_timeout_ms=settings.registry_session_timeout_ms,
                ),
                InputConsumer(
                    settings.bootstrap_servers,
                    f"{group}.registry-commands",
                    topics.registry_commands,
                    lambda raw: handle_registry_command(service, raw),
                    dead_letters,
                    metrics,
                    on_fatal=on_consumer_failure,
                    session_timeout_ms=settings.registry_session_timeout_ms,
                ),
            ]
            for consumer in app.state.consumers:
                consumer.start()
        # Another instance's change reaches this one's route cache through registry-events.
        app.state.dashboard = start_dashboard(settings, service.invalidate_route)
        log.info(
            "registry ready database=%s artifact_dir=%s kafka=%s",
            _redact(settings.resolved_database_url()),
            artifact_dir,
            settings.bootstrap_servers if settings.registry_kafka_enabled else "off",
        )
        try:
            yield
        finally:
            await stop_dashboard(app.state.dashboard)
            for consumer in app.state.consumers:
                consumer.stop()
            if publisher is not None:
                publisher.stop()
            if app.state.producer is not None:
                app.state.producer.flush(10)
            store.close()

    app = FastAPI(
        title="relearn registry",
        version="0.1.0",
        description="Model versions, lifecycle, traffic weights and artifacts.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(RegistryError, _registry_error)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(actions.router)
    app.include_router(dashboard.router)
    return app


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
