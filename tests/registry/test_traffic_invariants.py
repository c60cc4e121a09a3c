"""One candidate at a time, production never starved: the registry's traffic invariants, held
in the transaction of every change, on SQLite and PostgreSQL, and through the HTTP API."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contracts.events import (
    RegistryCommandIssued,
    RegistryCommandType,
    RegistryEventOccurred,
    RegistryEventType,
)
from contracts.model_types import ModelTypeCatalog
from contracts.serving import MAX_CANDIDATE_WEIGHT, RAMP, Status
from registry import lifecycle
from registry.artifacts import ArtifactStore
from registry.domain import ModelVersion
from registry.errors import InvalidWeights, RegistryError, TrafficInvariantViolated
from registry.service import RegistryService
from registry.settings import RegistrySettings
from registry.store import RegistryStore
from tests.registry.conftest import AUTH, DeploymentFactory, make_deployment

MT = "calling_score"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _version(version: str, status: Status, weight: float) -> ModelVersion:
    return ModelVersion(MT, version, status, weight, "0" * 64, "file:///x", 1, NOW)


def assert_invariants(versions: list[ModelVersion]) -> None:
    live = [v for v in versions if v.weight > 0]
    staging = [v for v in live if v.status is Status.STAGING]
    production = [v for v in versions if v.status is Status.PRODUCTION]
    assert len(staging) <= 1, versions
    assert len(live) <= 2 and len(production) <= 1, versions
    if live:
        assert sum(v.weight for v in live) == pytest.approx(1.0)
    if staging and production:
        assert staging[0].weight <= MAX_CANDIDATE_WEIGHT + 1e-9
        assert production[0].weight >= 1 - staging[0].weight - 1e-9


def test_check_traffic_refuses_a_second_candidate_and_a_starved_production() -> None:
    production = _version("v1.0", Status.PRODUCTION, 0.8)
    lifecycle.check_traffic(
        [production.with_state(Status.PRODUCTION, 0.9), _version("v1.1", Status.STAGING, 0.1)], MT
    )
    with pytest.raises(TrafficInvariantViolated, match="one candidate at a time"):
        lifecycle.check_traffic(
            [
                production,
                _version("v1.1", Status.STAGING, 0.1),
                _version("v1.2", Status.STAGING, 0.1),
            ],
            MT,
        )
    with pytest.raises(TrafficInvariantViolated, match="at most 0.5"):
        lifecycle.check_traffic(
            [production.with_state(Status.PRODUCTION, 0.3), _version("v1.1", Status.STAGING, 0.7)],
            MT,
        )
    # the ramp's last step before promotion is allowed
    lifecycle.check_traffic(
        [production.with_state(Status.PRODUCTION, 0.5), _version("v1.1", Status.STAGING, 0.5)], MT
    )


@pytest.fixture
def service(store: RegistryStore, artifact_dir: Path) -> RegistryService:
    return RegistryService(store, ArtifactStore(artifact_dir), ModelTypeCatalog())


def _events(store: RegistryStore) -> list[RegistryEventOccurred]:
    return [
        RegistryEventOccurred.model_validate_json(r.payload) for r in store.unsent_events(10_000)
    ]


def test_a_deployment_under_test_replaces_the_candidate_never_stacks(
    service: RegistryService, store: RegistryStore, deployment: DeploymentFactory
) -> None:
    for seed, command in ((0, "c0"), (1, "c1"), (2, "c2")):
        assert service.register_deployment(deployment(seed=seed, command_id=command)).outcome == (
            "applied"
        )
        assert_invariants(store.versions(MT))
    states = {v.version: (v.status, v.weight) for v in store.versions(MT)}
    assert states == {
        "v1.0": (Status.PRODUCTION, 0.9),
        "v1.1": (Status.ROLLED_BACK, 0.0),
        "v1.2": (Status.STAGING, 0.1),
    }
    events = _events(store)
    replaced = [e for e in events if e.type is RegistryEventType.VERSION_ROLLED_BACK]
    assert [(e.version, e.reason) for e in replaced] == [
        ("v1.1", "replaced by v1.2 before its test decided")
    ]
    registered = [e for e in events if e.type is RegistryEventType.VERSION_REGISTERED]
    # each registration names the retrain command it answers (streams waits on it)
    assert [(e.version, (e.details or {})["command_id"]) for e in registered] == [
        ("v1.0", "c0"),
        ("v1.1", "c1"),
        ("v1.2", "c2"),
    ]


def _set_weights(service: RegistryService, weights: dict[str, float], force: bool = False) -> None:
    service.handle_command(
        RegistryCommandIssued(
            type=RegistryCommandType.SET_WEIGHTS,
            model_type=MT,
            weights=weights,
            issued_by="op",
            force=force,
        )
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_any_sequence_of_changes_keeps_the_invariants(
    service: RegistryService, store: RegistryStore, deployment: DeploymentFactory, seed: int
) -> None:
    """Deployments, ramps, promotions, rollbacks and operator weights in random order: every
    committed state has one candidate at most and production holding the rest."""
    rng = random.Random(seed)
    refused = applied = 0
    for step in range(40):
        versions = store.versions(MT)
        names = [v.version for v in versions]
        kind = rng.choice(["deploy", "deploy", "ramp", "promote", "rollback", "weights"])
        try:
            if kind == "deploy" or not names:
                service.register_deployment(deployment(seed=step, command_id=f"c{step}"))
            else:
                version = rng.choice(names)
                if kind == "weights":
                    other = rng.choice(names)
                    share = rng.choice([0.1, 0.5, 0.7, 1.0])
                    weights = (
                        {version: share, other: 1 - share} if other != version else {version: 1.0}
                    )
                    _set_weights(service, weights)
                else:
                    command_type = {
                        "ramp": RegistryCommandType.PROMOTE,
                        "promote": RegistryCommandType.PROMOTE,
                        "rollback": RegistryCommandType.ROLLBACK,
                    }[kind]
                    production = lifecycle.production_of(versions)
                    ramp = (
                        {version: 0.5, production.version: 0.5}
                        if kind == "ramp"
                        and production is not None
                        and production.version != version
                        else None
                    )
                    service.handle_command(
                        RegistryCommandIssued(
                            type=command_type, model_type=MT, version=version, weights=ramp
                        )
                    )
            applied += 1
        except RegistryError:
            refused += 1
        assert_invariants(store.versions(MT))
    assert applied > 10 and refused > 0


def test_operator_weights_that_would_break_them_are_refused_unless_forced(
    service: RegistryService, store: RegistryStore, deployment: DeploymentFactory
) -> None:
    service.register_deployment(deployment(seed=0))
    service.register_deployment(deployment(seed=1))
    _set_weights(service, {"v1.0": 1.0})  # v1.1 stays staging, without traffic
    service.register_deployment(deployment(seed=2))
    # a second candidate with traffic (v1.1 back beside v1.2) is refused
    with pytest.raises(TrafficInvariantViolated, match="one candidate at a time"):
        _set_weights(service, {"v1.0": 0.8, "v1.1": 0.1, "v1.2": 0.1})
    with pytest.raises(TrafficInvariantViolated, match="at most 0.5"):
        _set_weights(service, {"v1.0": 0.2, "v1.2": 0.8})
    assert {v.version: v.weight for v in store.versions(MT)} == {
        "v1.0": 0.9,
        "v1.1": 0.0,
        "v1.2": 0.1,
    }
    _set_weights(service, {"v1.0": 0.2, "v1.2": 0.8}, force=True)
    assert {v.version: v.weight for v in store.versions(MT)}["v1.2"] == 0.8
    # the next deployment puts things right: the forced candidate is replaced
    service.register_deployment(deployment(seed=3))
    assert_invariants(store.versions(MT))
    assert {v.version: v.weight for v in store.versions(MT) if v.weight} == {
        "v1.0": 0.9,
        "v1.3": 0.1,
    }


def test_put_weights_starving_production_is_a_409_unless_forced(
    client: TestClient, artifact_dir: Path
) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    for seed in (0, 1):
        service.register_deployment(make_deployment(artifact_dir, seed=seed))
    starve = {"weights": {"v1.0": 0.0, "v1.1": 1.0}}
    response = client.put(f"/models/{MT}/weights", json=starve, headers=AUTH)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "traffic_invariant"
    assert "promote it instead" in response.json()["detail"]
    assert client.get(f"/models/{MT}").status_code in (200, 404)
    forced = client.put(f"/models/{MT}/weights", json={**starve, "force": True}, headers=AUTH)
    assert forced.status_code == 200, forced.text
    assert forced.json()["model"]["weights"] == {"v1.1": 1.0}


def test_a_forced_state_still_answers_rejections_and_ignores_duplicates(
    service: RegistryService, store: RegistryStore, deployment: DeploymentFactory
) -> None:
    """A change that moves no traffic is never refused by the invariants: in a state an operator
    forced, a deployment the registry rejects is still answered (streams waits on its
    command_id), and a second deployment for a registered command is still ignored."""
    service.register_deployment(deployment(seed=0, command_id="c0"))
    service.register_deployment(deployment(seed=1, command_id="c1"))
    _set_weights(service, {"v1.0": 0.2, "v1.1": 0.8}, force=True)
    forced = {v.version: (v.status, v.weight) for v in store.versions(MT)}

    bad = deployment(seed=2, command_id="c2", input_shape=[None, 5])
    assert service.register_deployment(bad).outcome == "rejected"
    rejected = [e for e in _events(store) if e.type is RegistryEventType.ARTIFACT_REJECTED]
    assert [(e.details or {}).get("command_id") for e in rejected] == ["c2"]

    again = deployment(seed=3, command_id="c1")
    assert service.register_deployment(again).outcome == lifecycle.DUPLICATE_COMMAND
    assert {v.version: (v.status, v.weight) for v in store.versions(MT)} == forced


def test_forced_weights_that_round_off_never_block_the_next_deployment(
    service: RegistryService, store: RegistryStore, deployment: DeploymentFactory
) -> None:
    """Weights are stored rounded to 6 decimals: a map whose sum is within 1e-6 of 1 only before
    rounding is refused (422), else a forced one would be stored off by 2e-6 and every later
    registration (its weights derived from it) refused as not summing to 1, its command never
    answered."""
    service.register_deployment(deployment(seed=0, command_id="c0"))
    service.register_deployment(deployment(seed=1, command_id="c1"))
    odd = {"v1.0": 0.4000004, "v1.1": 0.5999994}  # sums to 0.9999998; rounded, to 0.999999
    with pytest.raises(InvalidWeights):
        lifecycle.validate_weights(odd)
    with pytest.raises(RegistryError):
        _set_weights(service, odd, force=True)
    assert service.register_deployment(deployment(seed=2, command_id="c2")).outcome == "applied"
    assert_invariants(store.versions(MT))


def test_the_maximum_candidate_weight_leaves_room_for_the_ramp(tmp_path: Path) -> None:
    """streams ramps a better candidate 0.1 -> 0.5 -> 1.0: a maximum under 0.5 would refuse its
    every ramp step, and the candidate would stay at 0.1 with no decision left to make."""
    from pydantic import ValidationError

    assert RegistrySettings(state_dir=tmp_path, registry_max_candidate_weight=0.5)
    with pytest.raises(ValidationError):
        RegistrySettings(state_dir=tmp_path, registry_max_candidate_weight=0.3)
    assert MAX_CANDIDATE_WEIGHT == max(step for step in RAMP if step < 1.0)
    assert RegistrySettings(state_dir=tmp_path).registry_max_candidate_weight == RAMP[-2]
    assert RegistrySettings(state_dir=tmp_path).registry_candidate_weight == RAMP[0]
