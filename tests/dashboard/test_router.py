"""The dashboard's routes without a browser: page and assets, history, the streams proxy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.main import create_app
from registry.settings import RegistrySettings
from tests.conftest import free_port

# What the little HTTP server standing in for streams answers, per path.
ANSWERS: dict[str, tuple[int, bytes]] = {
    "/performance/calling_score": (200, b'[{"version": "v1.0", "sample_count": 3}]'),
    "/abtest/calling_score": (503, b'{"detail": "partition owner not known yet, retry"}'),
    "/samples/calling_score": (500, b"<html>oops</html>"),
    "/healthz": (200, b'{"status": "ok"}'),
}


class _Streams(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        status, body = ANSWERS.get(self.path.split("?")[0], (404, b'{"detail": "no"}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def streams_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streams)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _client(tmp_path: Path, streams_url: str) -> TestClient:
    settings = RegistrySettings(
        state_dir=tmp_path, api_token="t", registry_kafka_enabled=False, streams_url=streams_url
    )
    return TestClient(create_app(settings))


def test_page_assets_and_history(tmp_path: Path, streams_url: str) -> None:
    with _client(tmp_path, streams_url) as client:
        page = client.get("/")
        assert page.status_code == 200 and "/dashboard/static/app.js" in page.text
        script = client.get("/dashboard/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert client.get("/dashboard/static/..%2Fhistory.py").status_code == 404
        assert client.get("/dashboard/static/index.html").status_code == 404
        assert client.get("/dashboard/api/calling_score/history").json()["steps"] == []
        assert client.get("/dashboard/api/nope/history").status_code == 404
        status = client.get("/dashboard/api/status").json()
        assert status["kafka"]["ok"] is None and status["streams"]["ok"] is True


def test_streams_proxy_passes_answers_and_explains_failures(
    tmp_path: Path, streams_url: str
) -> None:
    with _client(tmp_path, streams_url) as client:
        rows = client.get("/dashboard/api/streams/performance/calling_score?days=3")
        assert rows.status_code == 200 and rows.json()[0]["sample_count"] == 3
        waiting = client.get("/dashboard/api/streams/abtest/calling_score")
        assert waiting.status_code == 503 and waiting.json()["code"] == "streams_not_ready"
        broken = client.get("/dashboard/api/streams/samples/calling_score")
        assert broken.status_code == 502 and broken.json()["code"] == "streams_bad_answer"
        assert client.get("/dashboard/api/streams/other/calling_score").status_code == 422


def test_unreachable_streams_is_a_502_notice(tmp_path: Path) -> None:
    with _client(tmp_path, f"http://127.0.0.1:{free_port()}") as client:
        answer = client.get("/dashboard/api/streams/abtest/calling_score")
        assert answer.status_code == 502
        assert answer.json()["code"] == "streams_unreachable"
        assert "does not answer" in json.dumps(answer.json())
        assert client.get("/dashboard/api/status").json()["streams"]["ok"] is False
