"""The production model the gate compares against, fetched from the registry's HTTP API (a port)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from training.errors import RegistryUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductionModel:
    version: str
    onnx: bytes


class ProductionModelSource(Protocol):
    """None when the model type has no production version; RegistryUnavailableError when unknown."""

    def production_model(self, model_type: str) -> ProductionModel | None: ...


class FixedProductionSource:
    """A production model handed in (tests, the manual path with a local baseline), or none."""

    def __init__(self, model: ProductionModel | None = None) -> None:
        self._model = model

    def production_model(self, model_type: str) -> ProductionModel | None:
        return self._model


class RegistryHttp:
    """The registry routes the trainer reads: GET /models, .../versions/{v}, .../artifact."""

    def __init__(
        self, base_url: str, timeout: float = 5.0, client: httpx.Client | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # One client, reused: a new one per request costs ~0.1 s (its TLS context).
        self._client = client or httpx.Client(base_url=self._base_url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str) -> httpx.Response:
        try:
            response = self._client.get(path)
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(f"registry {self._base_url} unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise RegistryUnavailableError(f"registry GET {path}: HTTP {response.status_code}")
        return response

    def _models(self) -> list[dict[str, Any]]:
        response = self._get("/models")
        if response.status_code != 200:
            raise RegistryUnavailableError(f"registry GET /models: HTTP {response.status_code}")
        models: list[dict[str, Any]] = response.json()
        return models

    def serving_versions(self) -> dict[str, list[str]]:
        """Each model type's versions with traffic: production and staging."""
        serving: dict[str, list[str]] = {}
        for entry in self._models():
            versions = [entry["production"]] if entry.get("production") else []
            versions += entry.get("staging") or []
            serving[entry["model_type"]] = [v["version"] for v in versions]
        return serving

    def production_model(self, model_type: str) -> ProductionModel | None:
        entry = next((m for m in self._models() if m.get("model_type") == model_type), None)
        production = (entry or {}).get("production")
        if not production:
            return None
        version = production["version"]
        artifact = self._get(f"/models/{model_type}/versions/{version}/artifact")
        if artifact.status_code != 200:
            raise RegistryUnavailableError(
                f"registry artifact of {model_type} {version}: HTTP {artifact.status_code}"
            )
        return ProductionModel(version=version, onnx=artifact.content)

    def version_record(self, model_type: str, version: str) -> dict[str, Any]:
        """One version object (lineage, metrics...); LookupError when there is none."""
        response = self._get(f"/models/{model_type}/versions/{version}")
        if response.status_code == 404:
            raise LookupError(f"the registry has no {model_type} {version}")
        if response.status_code != 200:
            raise RegistryUnavailableError(
                f"registry GET version {model_type} {version}: HTTP {response.status_code}"
            )
        record: dict[str, Any] = response.json()
        return record
