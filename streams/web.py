"""The streams web views (port 6066): plain JSON over HTTP, answered from `TableViews`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson

from streams import processing, tables
from streams.views import TableViews

log = logging.getLogger(__name__)

Answer = tuple[int, Any]


class WorkerReadout(Protocol):
    """What the web views may read of a worker (`streams.worker.Worker` is one)."""

    @property
    def views(self) -> TableViews: ...

    @property
    def sample_threshold(self) -> int: ...

    def knows(self, model_type: str) -> bool: ...

    def health(self) -> dict[str, Any]: ...


class StreamsWeb:
    """Routes of docs/design.md's streams table, plus /rejections and /healthz."""

    def __init__(self, worker: WorkerReadout) -> None:
        self.worker = worker

    def answer(self, path: str, query: dict[str, list[str]]) -> Answer:
        parts = [part for part in path.split("/") if part]
        if parts == ["healthz"]:
            return 200, self.health()
        if parts == ["rejections"]:
            return self._when_ready(
                lambda: processing.rejection_counts(self.worker.views.table(tables.REJECTIONS))
            )
        if len(parts) != 2 or parts[0] not in ("performance", "samples", "abtest"):
            return 404, {"detail": "not found"}
        route, model_type = parts
        if not self.worker.knows(model_type):
            return 404, {"detail": f"unknown model type {model_type!r}"}
        views = self.worker.views
        if route == "performance":
            try:
                days = max(1, int(query.get("days", ["7"])[0]))
            except ValueError:
                return 400, {"detail": "days must be a whole number"}
            return self._when_ready(
                lambda: processing.performance_rows(
                    views.table(tables.PERFORMANCE), model_type, days, datetime.now(UTC)
                )
            )
        if route == "samples":
            return self._when_ready(
                lambda: processing.samples_view(
                    views.table(tables.MODEL_TYPES),
                    model_type,
                    self.worker.sample_threshold,
                )
            )
        return self._when_ready(
            lambda: processing.abtest_view(views.table(tables.MODEL_TYPES), model_type)
        )

    def _when_ready(self, build: Callable[[], Any]) -> Answer:
        if not self.worker.views.caught_up:
            return 503, {"detail": "tables are still being read, retry"}
        return 200, build()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", **self.worker.health()}

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
                url = urlsplit(self.path)
                try:
                    status, body = web.answer(url.path, parse_qs(url.query))
                except Exception:  # noqa: BLE001 - a view error is a 500, never a dead server
                    log.exception("web view %s failed", self.path)
                    status, body = 500, {"detail": "internal error"}
                payload = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("web: " + format, *args)

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="streams-web", daemon=True).start()
        log.info("streams web views on http://%s:%d", host, port)
        return server
