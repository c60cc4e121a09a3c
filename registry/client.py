"""The registry's Python client, and ModelRouter: serve predictions from the versions it routes to."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.serving import DEFAULT_SCORE
from contracts.versions import NO_MODEL_VERSION
from registry.errors import RegistryError
from registry.routing import SubjectRoutes
from registry.views import ActionOut, ModelSummary, RetrainOut, RouteOut, VersionOut

log = logging.getLogger(__name__)

_V = TypeVar("_V", bound=BaseModel)


class RegistryClientError(RegistryError):
    """A registry call that failed: HTTP status (None when unreachable) and the server's code."""

    code = "registry_call_failed"

    def __init__(self, message: str, status_code: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        if code is not None:
            self.code = code


class ArtifactIntegrityError(RegistryClientError):
    """An artifact whose bytes do not hash to the sha256 the registry recorded: never loaded."""


class RegistryClientSettings(BaseSettings):
    """Where an operator's client finds the registry and its token (env prefix RELEARN_)."""

    model_config = SettingsConfigDict(env_prefix="RELEARN_", extra="ignore", frozen=True)

    registry_url: str = "http://127.0.0.1:8080"
    api_token: SecretStr | None = None  # default: the registry's token file under state_dir
    state_dir: Path = Path(".relearn")

    def token(self) -> str | None:
        if self.api_token is not None and self.api_token.get_secret_value():
            return self.api_token.get_secret_value()
        token_file = self.state_dir / "registry.token"
        return token_file.read_text().strip() if token_file.exists() else None


class RegistryClient:
    """Typed calls to the registry HTTP API; every failure raises RegistryClientError."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        """`http`: an httpx client to send through instead (tests hand in FastAPI's TestClient)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        # One client, reused: a new one per request costs ~0.1 s (its TLS context).
        self._http = http or httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

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

    def _parsed(self, view: type[_V], method: str, path: str, **kwargs: Any) -> _V:
        response = self._call(method, path, **kwargs)
        try:
            return view.model_validate_json(response.content)
        except ValidationError as exc:
            raise RegistryClientError(f"{method} {path}: unreadable answer: {exc}") from exc

    def _parsed_list(self, view: type[_V], method: str, path: str) -> list[_V]:
        response = self._call(method, path)
        try:
            return TypeAdapter(list[view]).validate_json(response.content)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise RegistryClientError(f"{method} {path}: unreadable answer: {exc}") from exc

    def models(self) -> list[ModelSummary]:
        return self._parsed_list(ModelSummary, "GET", "/models")

    def model(self, model_type: str) -> ModelSummary:
        return self._parsed(ModelSummary, "GET", f"/models/{self._q(model_type)}")

    def versions(self, model_type: str) -> list[VersionOut]:
        return self._parsed_list(VersionOut, "GET", f"/models/{self._q(model_type)}/versions")

    def version(self, model_type: str, version: str) -> VersionOut:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}"
        return self._parsed(VersionOut, "GET", path)

    def route(self, model_type: str, subject_id: str) -> RouteOut:
        path = f"/models/{self._q(model_type)}/route"
        return self._parsed(RouteOut, "GET", path, params={"subject_id": subject_id})

    def artifact(self, model_type: str, version: str) -> bytes:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}/artifact"
        return self._call("GET", path).content

    def promote(
        self, model_type: str, version: str, weights: dict[str, float] | None = None
    ) -> ActionOut:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}/promote"
        body = {"weights": weights} if weights is not None else None
        return self._parsed(ActionOut, "POST", path, json=body)

    def rollback(self, model_type: str, version: str) -> ActionOut:
        path = f"/models/{self._q(model_type)}/versions/{self._q(version)}/rollback"
        return self._parsed(ActionOut, "POST", path)

    def set_weights(
        self, model_type: str, weights: dict[str, float], force: bool = False
    ) -> ActionOut:
        """`force`: override the traffic invariants (else a 409 `traffic_invariant`)."""
        path = f"/models/{self._q(model_type)}/weights"
        body: dict[str, Any] = {"weights": weights, **({"force": True} if force else {})}
        return self._parsed(ActionOut, "PUT", path, json=body)

    def retrain(self, model_type: str) -> RetrainOut:
        return self._parsed(RetrainOut, "POST", f"/models/{self._q(model_type)}/retrain")


class Prediction(NamedTuple):
    """A score and the version (and sha256) that made it; immutable, and cheap to build."""

    score: float
    version: str
    sha256: str | None


@dataclass(frozen=True)
class _Loaded:
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    # The first output's name, asked for by name: `run(None, ...)` looks every output's name
    # up in the session's metadata on each call.
    outputs: list[str]
    sha256: str
    asarray: Callable[..., Any]  # numpy.asarray, imported with the first session, not the module
    float32: Any


class _Route(SubjectRoutes):
    """One model type's routing, built per refresh, with the sessions of its versions as they
    are used (the router's `_loaded` stays their one owner)."""

    def __init__(self, model_type: str, weights: Mapping[str, float]) -> None:
        super().__init__(model_type, weights)
        self.sessions: dict[str, _Loaded] = {}


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
        self._routes: dict[str, _Route] = {}
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
            routes = {m.model_type: _Route(m.model_type, m.weights) for m in models}
        except ValueError as exc:  # weights no table can be built from
            raise RegistryClientError(f"unreadable /models answer: {exc!r}") from exc
        self._routes = routes
        self._refreshed.set()
        self._drop_unrouted({(t, v) for t, route in routes.items() for v in route.versions})

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
        route = self._routes.get(model_type)
        return route.version_of(subject_id) if route else None

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Prediction:
        """The score of the version this subject is routed to; 0.5 / v0.0 before any version.

        The hot path (BENCHMARKS.md: overhead over a bare session.run): one dict lookup for the
        route, the hash prefix reused, the session looked up once, the score read with `item`.
        """
        route = self._routes.get(model_type)
        if route is None and not self._refreshed.is_set():
            self.refresh()
            route = self._routes.get(model_type)
        version = route.version_of(subject_id) if route is not None else None
        if route is None or version is None:
            return Prediction(DEFAULT_SCORE, NO_MODEL_VERSION, None)
        loaded = route.sessions.get(version)
        if loaded is None:
            loaded = route.sessions[version] = self._load(model_type, version)
        row = loaded.asarray(features, loaded.float32).reshape(1, -1)
        output = loaded.session.run(loaded.outputs, {loaded.input_name: row})[0]
        return Prediction(output.item(0), version, loaded.sha256)

    def _load(self, model_type: str, version: str) -> _Loaded:
        with self._load_lock:
            found = self._loaded.get((model_type, version))
            if found is not None:
                return found
            sha256 = self._client.version(model_type, version).sha256
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
            import numpy
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            loaded = _Loaded(
                session,
                session.get_inputs()[0].name,
                [session.get_outputs()[0].name],
                sha256,
                numpy.asarray,
                numpy.float32,
            )
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


def _read_if_intact(path: Path, sha256: str) -> bytes | None:
    """The cached file's bytes when they hash to `sha256`; None when missing or not intact."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None
