"""The route cache serves a new version as soon as the weights change, here or on another instance."""

from __future__ import annotations

from pathlib import Path

import orjson

from contracts.model_types import ModelTypeCatalog
from registry.artifacts import ArtifactStore
from registry.dashboard.history import DashboardHistory
from registry.routing import route
from registry.service import RegistryService
from registry.store import RegistryStore, open_store
from tests.registry.conftest import DeploymentFactory

MT = "calling_score"


def _subject_of(weights: dict[str, float], version: str) -> str:
    return next(s for i in range(100_000) if route(weights, MT, s := f"s-{i}") == version)


def _service(tmp_path: Path, artifact_dir: Path, store: RegistryStore) -> RegistryService:
    # A cache that would outlive the test: only invalidation can make a change visible.
    return RegistryService(
        store, ArtifactStore(artifact_dir), ModelTypeCatalog(), route_cache_seconds=3600
    )


def test_a_registration_is_routed_at_once_despite_a_long_cache(
    tmp_path: Path, artifact_dir: Path, deployment: DeploymentFactory
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    service = _service(tmp_path, artifact_dir, store)
    service.register_deployment(deployment(seed=0, command_id="c0"))
    subject = _subject_of({"v1.0": 0.9, "v1.1": 0.1}, "v1.1")
    assert service.route(MT, subject).version == "v1.0"  # cached now, for an hour
    service.register_deployment(deployment(seed=1, command_id="c1"))
    assert service.route(MT, subject).version == "v1.1"
    store.close()


def test_a_table_read_while_a_change_commits_is_not_cached(
    tmp_path: Path, artifact_dir: Path, deployment: DeploymentFactory
) -> None:
    """A route read in a thread races a commit: its table may predate the change, so it answers
    once but is not kept (it was kept for the whole TTL before: p99 up to 1.7 s)."""
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    service = _service(tmp_path, artifact_dir, store)
    service.register_deployment(deployment(seed=0, command_id="c0"))
    read = store.serving

    def serving_then_a_change_commits(model_type: str):  # type: ignore[no-untyped-def]
        rows = read(model_type)
        service.invalidate_route(model_type)  # what a commit on another thread does
        return rows

    store.serving = serving_then_a_change_commits  # type: ignore[method-assign]
    assert service.route(MT, "s-1").version == "v1.0"
    assert service.route_cached(MT, "s-1") is None
    store.serving = read  # type: ignore[method-assign]
    assert service.route(MT, "s-1").version == "v1.0"
    assert service.route_cached(MT, "s-1") is not None
    store.close()


def test_another_instances_change_on_registry_events_invalidates_the_cache(
    tmp_path: Path, artifact_dir: Path, deployment: DeploymentFactory
) -> None:
    """Two registries share one database: the second learns of the first's change from
    registry-events (the dashboard's follower), not from its cache's TTL."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first_store, second_store = open_store(url), open_store(url)
    first = _service(tmp_path, artifact_dir, first_store)
    second = _service(tmp_path, artifact_dir, second_store)
    history = DashboardHistory()
    history.on_weights_event(second.invalidate_route)
    first.register_deployment(deployment(seed=0, command_id="c0"))
    subject = _subject_of({"v1.0": 0.9, "v1.1": 0.1}, "v1.1")
    assert second.route(MT, subject).version == "v1.0"
    first.register_deployment(deployment(seed=1, command_id="c1"))
    assert second.route(MT, subject).version == "v1.0"  # stale: nothing told it yet
    rejected = {"type": "artifact_rejected", "model_type": MT, "weights": {}}
    history.apply_registry_event(rejected)
    assert second.route_cached(MT, subject) is not None  # a rejection changes no weight
    [event] = [r for r in first_store.unsent_events() if b"version_registered" in r.payload][1:]
    history.apply_registry_event(orjson.loads(event.payload))
    assert second.route(MT, subject).version == "v1.1"
    first_store.close()
    second_store.close()
