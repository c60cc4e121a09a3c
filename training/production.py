"""The production model the gate compares against, fetched through the registry's client (a port)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import httpx

from registry.client import RegistryClient, RegistryClientError
from registry.views import VersionOut
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
    """The registry reads the trainer makes (`registry.client`), failures as the trainer's errors:
    any failed call is RegistryUnavailableError, an unknown version LookupError."""

    def __init__(
        self, base_url: str, timeout: float = 5.0, client: httpx.Client | None = None
    ) -> None:
        self._registry = RegistryClient(base_url, timeout=timeout, http=client)

    def close(self) -> None:
        self._registry.close()

    def serving_versions(self) -> dict[str, list[str]]:
        """Each model type's versions with traffic: production and staging."""
        try:
            models = self._registry.models()
        except RegistryClientError as exc:
            raise RegistryUnavailableError(f"registry {self._registry.base_url}: {exc}") from exc
        serving: dict[str, list[str]] = {}
        for entry in models:
            versions = [entry.production] if entry.production else []
            serving[entry.model_type] = [v.version for v in versions + entry.staging]
        return serving

    def production_model(self, model_type: str) -> ProductionModel | None:
        try:
            models = self._registry.models()
            entry = next((m for m in models if m.model_type == model_type), None)
            if entry is None or entry.production is None:
                return None
            version = entry.production.version
            onnx = self._registry.artifact(model_type, version)
        except RegistryClientError as exc:
            raise RegistryUnavailableError(f"registry {self._registry.base_url}: {exc}") from exc
        return ProductionModel(version=version, onnx=onnx)

    def version_record(self, model_type: str, version: str) -> VersionOut:
        """One version (lineage, metrics...); LookupError when there is none."""
        try:
            return self._registry.version(model_type, version)
        except RegistryClientError as exc:
            if exc.status_code == 404:
                raise LookupError(f"the registry has no {model_type} {version}") from exc
            raise RegistryUnavailableError(f"registry {self._registry.base_url}: {exc}") from exc
