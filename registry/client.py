"""The registry's Python client, and ModelRouter: serve predictions from the versions it routes to."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from registry.routing import RouteTable

log = logging.getLogger(__name__)

DEFAULT_SCORE = 0.5
NO_MODEL_VERSION = "v0.0"


class RegistryClientError(Exception):
    """A registry call that failed: HTTP status (None when unreachable) and the server's detail."""

    def __init__(self, message: str, status_code: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class ArtifactIntegrityError(RegistryClientError):
    """An artifact whose bytes do not hash to the sha256 the registry recorded: never loaded."""


class RegistryClient:
    """Typed calls to the registry HTTP API; every failure raises RegistryClientError."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryClientError(f"registry unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                detail, code = body.get("detail", response.text), body.get("code")
            except ValueError:
                detail, code = response.text, None
            raise RegistryClientError(
                f"{method} {path}: {response.status_code} {detail}", response.status_code, code
            )
        return response

    @staticmethod
    def _q(value: str) -> str:
        return quote(value, safe="")

    def models(self) -> list[dict[str, Any]]:
        return self._call("GET", "/models").json()

    def versions(self, model_type: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/models/{self._q(model_type)}/versions").json()

    def version(self, model_type: str, version: str) -> dict[str, Any]:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}"
        return self._call("GET", path).json()

    def route(self, model_type: str, subject_id: str) -> dict[str, Any]:
        path = f"/models/{self._q(model_type)}/route"
        return self._call("GET", path, params={"subject_id": subject_id}).json()

    def artifact(self, model_type: str, version: str) -> bytes:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}/artifact"
        return self._call("GET", path).content

    def promote(
        self, model_type: str, version: str, weights: dict[str, float] | None = None
    ) -> dict[str, Any]:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}/promote"
        body = {"weights": weights} if weights is not None else None
        return self._call("POST", path, json=body).json()

    def rollback(self, model_type: str, version: str) -> dict[str, Any]:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}/rollback"
        return self._call("POST", path).json()

    def set_weights(self, model_type: str, weights: dict[str, float]) -> dict[str, Any]:
        path = f"/models/{self._q(model_type)}/weights"
        return self._call("PUT", path, json={"weights": weights}).json()

    def retrain(self, model_type: str) -> dict[str, Any]:
        return self._call("POST", f"/models/{self._q(model_type)}/retrain").json()


@dataclass(frozen=True)
class Prediction:
    score: float
    version: str
    sha256: str | None


@dataclass(frozen=True)
class _Loaded:
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    sha256: str


class ModelRouter:
    """Routes each subject like the registry does, from the weights it last pulled, and scores
    with that version's ONNX model (downloaded once, sha256-verified, one session per version).

    A session is built from the very bytes that were hashed, never from the file read again, so
    a file swapped after the check is not loaded; a version that no longer gets traffic has its
    session dropped at the next refresh.
    """

    def __init__(
        self,
        registry_url: str,
        cache_dir: Path | None = None,
        refresh_interval: float = 1.0,
        threads: int = 1,
    ) -> None:
        self._client = RegistryClient(registry_url)
        self._cache_dir = cache_dir or Path(tempfile.mkdtemp(prefix="relearn-models-"))
        self._threads = threads
        self._tables: dict[str, RouteTable] = {}
        self._loaded: dict[tuple[str, str], _Loaded] = {}
        self._load_lock = threading.Lock()
        self._refreshed = threading.Event()
        self._stop = threading.Event()
        self._refresh_interval = refresh_interval
        self._thread = threading.Thread(target=self._follow, name="model-router", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Pull `/models` now and route by its weights from here on."""
        models = self._client.models()
        try:
            tables = {m["model_type"]: RouteTable(m["weights"]) for m in models}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistryClientError(f"unreadable /models answer: {exc!r}") from exc
        self._tables = tables
        self._refreshed.set()
        self._drop_unrouted({(t, v) for t, table in tables.items() for v in table.versions})

    def _drop_unrouted(self, routed: set[tuple[str, str]]) -> None:
        with self._load_lock:
            for key in [key for key in self._loaded if key not in routed]:
                del self._loaded[key]
                log.info("dropped the session of model_type=%s version=%s (no traffic)", *key)

    @property
    def loaded_versions(self) -> set[tuple[str, str]]:
        """(model_type, version) of every session held now."""
        return set(self._loaded)

    def _follow(self) -> None:
        while not self._stop.wait(self._refresh_interval if self._refreshed.is_set() else 0):
            try:
                self.refresh()
            except RegistryClientError as exc:
                log.warning("model router refresh failed: %s", exc)
                self._stop.wait(self._refresh_interval)

    def version_for(self, model_type: str, subject_id: str) -> str | None:
        if not self._refreshed.is_set():
            self.refresh()
        table = self._tables.get(model_type)
        return table.route(model_type, subject_id) if table else None

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Prediction:
        """The score of the version this subject is routed to; 0.5 / v0.0 before any version."""
        version = self.version_for(model_type, subject_id)
        if version is None:
            return Prediction(score=DEFAULT_SCORE, version=NO_MODEL_VERSION, sha256=None)
        loaded = self._loaded.get((model_type, version)) or self._load(model_type, version)
        row = _np().asarray(features, dtype=_np().float32).reshape(1, -1)
        output = loaded.session.run(None, {loaded.input_name: row})[0]
        return Prediction(score=float(output.reshape(-1)[0]), version=version, sha256=loaded.sha256)

    def _load(self, model_type: str, version: str) -> _Loaded:
        with self._load_lock:
            found = self._loaded.get((model_type, version))
            if found is not None:
                return found
            sha256 = self._client.version(model_type, version)["sha256"]
            path = self._cache_dir / model_type / f"{sha256}.onnx"
            data = _read_if_intact(path, sha256)
            if data is None:
                data = self._client.artifact(model_type, version)
                actual = hashlib.sha256(data).hexdigest()
                if actual != sha256:
                    raise ArtifactIntegrityError(
                        f"{model_type} {version}: artifact sha256 {actual} is not {sha256}"
                    )
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(f".{os.getpid()}.part")
                partial.write_bytes(data)
                partial.replace(path)
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            loaded = _Loaded(session, session.get_inputs()[0].name, sha256)
            self._loaded[(model_type, version)] = loaded
            log.info("loaded model_type=%s version=%s sha256=%s", model_type, version, sha256)
            return loaded

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()

    def __enter__(self) -> ModelRouter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _np() -> Any:
    import numpy

    return numpy


def _read_if_intact(path: Path, sha256: str) -> bytes | None:
    """The cached file's bytes when they hash to `sha256`; None when missing or not intact."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None
