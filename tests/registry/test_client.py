"""RegistryClient and ModelRouter against a live registry (uvicorn in a thread, real onnxruntime)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import uvicorn

from registry.client import (
    ArtifactIntegrityError,
    ModelRouter,
    Prediction,
    RegistryClient,
    RegistryClientError,
)
from registry.main import create_app
from registry.service import RegistryService
from tests.conftest import free_port
from tests.registry.conftest import API_TOKEN as TOKEN
from tests.registry.conftest import kafkaless_settings, make_deployment

MT = "calling_score"


@dataclass
class LiveRegistry:
    url: str
    service: RegistryService
    artifact_dir: Path


@pytest.fixture
def live(tmp_path: Path, artifact_dir: Path) -> Iterator[LiveRegistry]:
    app = create_app(kafkaless_settings(tmp_path, artifact_dir))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield LiveRegistry(f"http://127.0.0.1:{port}", app.state.service, artifact_dir)
    finally:
        server.should_exit = True
        thread.join(10)


def test_client_calls_and_errors(live: LiveRegistry) -> None:
    for seed in (0, 1):
        live.service.register_deployment(make_deployment(live.artifact_dir, seed=seed))
    with RegistryClient(live.url, token=TOKEN) as client:
        assert [m.model_type for m in client.models()] == [MT, "outcome_prediction"]
        assert [v.version for v in client.versions(MT)] == ["v1.0", "v1.1"]
        assert client.version(MT, "v1.1").status == "staging"
        assert client.route(MT, "s1").version in {"v1.0", "v1.1"}
        assert len(client.artifact(MT, "v1.0")) == client.version(MT, "v1.0").size_bytes
        assert client.set_weights(MT, {"v1.0": 0.5, "v1.1": 0.5}).model.weights == {
            "v1.0": 0.5,
            "v1.1": 0.5,
        }
        assert client.promote(MT, "v1.1").model.production.version == "v1.1"
        assert client.rollback(MT, "v1.1").model.production.version == "v1.0"
        with pytest.raises(RegistryClientError) as missing:
            client.version(MT, "v9.9")
        assert missing.value.status_code == 404
    with RegistryClient(live.url) as anonymous, pytest.raises(RegistryClientError) as denied:
        anonymous.promote(MT, "v1.1")
    assert denied.value.status_code == 401
    with pytest.raises(RegistryClientError):
        RegistryClient("http://127.0.0.1:9", timeout=1).models()


def test_router_serves_the_routed_version_and_verifies_artifacts(
    live: LiveRegistry, tmp_path: Path
) -> None:
    features = np.linspace(-1, 1, 23).tolist()
    cache = tmp_path / "cache"
    with ModelRouter(live.url, cache_dir=cache, refresh_interval=60) as router:
        assert router.predict(MT, "s1", features) == Prediction(0.5, "v0.0", None)

        first = make_deployment(live.artifact_dir, seed=0)
        second = make_deployment(live.artifact_dir, seed=1)
        live.service.register_deployment(first)
        live.service.register_deployment(second)
        # A corrupt file already in the cache is not trusted: it is downloaded again.
        (cache / MT).mkdir(parents=True)
        (cache / MT / f"{first.sha256}.onnx").write_bytes(b"corrupt")
        with RegistryClient(live.url, token=TOKEN) as client:
            client.set_weights(MT, {"v1.0": 0.5, "v1.1": 0.5})
        router.refresh()

        bare = {
            d.sha256: ort.InferenceSession(d.artifact_uri[len("file://") :])
            for d in (first, second)
        }
        seen = set()
        with RegistryClient(live.url) as client:
            for subject in (f"subject-{i}" for i in range(20)):
                prediction = router.predict(MT, subject, features)
                routed = client.route(MT, subject)
                assert (prediction.version, prediction.sha256) == (
                    routed.version,
                    routed.sha256,
                )
                expected = bare[prediction.sha256].run(
                    None, {"features": np.asarray([features], dtype=np.float32)}
                )[0][0, 0]
                assert prediction.score == pytest.approx(float(expected), abs=1e-6)
                seen.add(prediction.version)
        assert seen == {"v1.0", "v1.1"}

    third = make_deployment(live.artifact_dir, seed=2)
    live.service.register_deployment(third)
    with RegistryClient(live.url, token=TOKEN) as client:
        client.promote(MT, "v1.2")
    with ModelRouter(live.url, cache_dir=tmp_path / "other", refresh_interval=60) as router:
        router._client.artifact = lambda *_: b"not the model"  # type: ignore[method-assign]
        with pytest.raises(ArtifactIntegrityError):
            router.predict(MT, "s1", features)
        assert not (tmp_path / "other" / MT / f"{third.sha256}.onnx").exists()


def test_a_cached_file_swapped_after_its_check_is_not_what_the_router_serves(
    live: LiveRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router used to hash the cached file, then have onnxruntime open the path again: a
    valid but different model swapped in between was served under the verified sha256."""
    from registry import client as client_module

    features = np.linspace(-1, 1, 23).tolist()
    genuine = make_deployment(live.artifact_dir, seed=0)
    impostor = make_deployment(live.artifact_dir, seed=1)
    live.service.register_deployment(genuine)
    cache = tmp_path / "cache"
    cached = cache / MT / f"{genuine.sha256}.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(Path(genuine.artifact_uri[len("file://") :]).read_bytes())
    checked = client_module._read_if_intact

    def swapped_right_after_the_check(path: Path, sha256: str) -> bytes | None:
        data = checked(path, sha256)
        path.write_bytes(Path(impostor.artifact_uri[len("file://") :]).read_bytes())
        return data

    monkeypatch.setattr(client_module, "_read_if_intact", swapped_right_after_the_check)
    with ModelRouter(live.url, cache_dir=cache, refresh_interval=60) as router:
        prediction = router.predict(MT, "s1", features)
    row = {"features": np.asarray([features], dtype=np.float32)}
    genuine_score = ort.InferenceSession(genuine.artifact_uri[len("file://") :]).run(None, row)
    impostor_score = ort.InferenceSession(impostor.artifact_uri[len("file://") :]).run(None, row)
    assert genuine_score[0][0, 0] != pytest.approx(impostor_score[0][0, 0], abs=1e-6)
    assert (prediction.version, prediction.sha256) == ("v1.0", genuine.sha256)
    assert prediction.score == pytest.approx(float(genuine_score[0][0, 0]), abs=1e-6)


def test_the_router_drops_the_session_of_a_version_without_traffic(
    live: LiveRegistry, tmp_path: Path
) -> None:
    features = np.linspace(-1, 1, 23).tolist()
    for seed in (0, 1):
        live.service.register_deployment(make_deployment(live.artifact_dir, seed=seed))
    with ModelRouter(live.url, cache_dir=tmp_path, refresh_interval=60) as router:
        with RegistryClient(live.url, token=TOKEN) as client:
            client.set_weights(MT, {"v1.0": 0.5, "v1.1": 0.5})
            router.refresh()
            served = {router.predict(MT, f"s{i}", features).version for i in range(40)}
            assert served == {"v1.0", "v1.1"}
            assert router.loaded_versions == {(MT, "v1.0"), (MT, "v1.1")}
            client.rollback(MT, "v1.1")
        router.refresh()
        assert router.loaded_versions == {(MT, "v1.0")}
        assert {router.predict(MT, f"s{i}", features).version for i in range(40)} == {"v1.0"}


def test_models_cli_prints_tables_and_acts(
    live: LiveRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from relearn.cli import main

    for seed in (0, 1):
        live.service.register_deployment(make_deployment(live.artifact_dir, seed=seed))
    monkeypatch.setenv("RELEARN_API_TOKEN", TOKEN)
    base = ["models", "--registry-url", live.url]
    assert main([*base, "list"]) == 0
    assert "v1.0 (0.9)" in capsys.readouterr().out
    assert main([*base, "promote", MT, "v1.1", "--weight", "0.5"]) == 0
    assert "v1.0=0.5, v1.1=0.5" in capsys.readouterr().out
    assert main([*base, "weights", MT, "v1.0=0.8", "v1.1=0.2"]) == 0
    assert "v1.0=0.8, v1.1=0.2" in capsys.readouterr().out
    assert main([*base, "rollback", MT, "v1.1"]) == 0
    assert main([*base, "show", MT]) == 0
    assert "rolled_back" in capsys.readouterr().out
    assert main([*base, "weights", MT, "v1.0=0.5", "v1.1=0.7"]) == 1  # 422, a clear error
    assert "sum to 1" in capsys.readouterr().err
    monkeypatch.setenv("RELEARN_API_TOKEN", "wrong")
    assert main([*base, "rollback", MT, "v1.0"]) == 1
    assert "403" in capsys.readouterr().err


def test_the_router_keeps_refreshing_after_an_answer_it_cannot_read(tmp_path: Path) -> None:
    """A `/models` answer of the wrong shape raised KeyError in the refresh thread, which ended
    it: the router then routed by stale weights for the rest of the process's life."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    fixed = threading.Event()
    bad = b'[{"unexpected": 1}]'
    good = b'[{"model_type": "calling_score", "weights": {"v1.0": 1.0}}]'

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = good if fixed.is_set() else bad
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with ModelRouter(url, cache_dir=tmp_path, refresh_interval=0.05) as router:
            with pytest.raises(RegistryClientError, match="unreadable"):
                router.refresh()  # refused with the client's error, not a KeyError
            time.sleep(0.3)  # the refresh thread has met the bad answer a few times
            fixed.set()
            deadline = time.monotonic() + 10
            while not router._refreshed.is_set():
                assert time.monotonic() < deadline, "the router stopped refreshing"
                time.sleep(0.05)
            assert router.version_for("calling_score", "s1") == "v1.0"
    finally:
        server.shutdown()
