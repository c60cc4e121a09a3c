"""The state machine and traffic rules, as pure planners."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import RegistryEventType
from contracts.serving import Status
from registry import lifecycle
from registry.domain import ModelVersion
from registry.errors import IllegalTransition, InvalidWeights, RegistryError, UnknownVersion
from tests.registry.conftest import make_deployment

NOW = datetime(2026, 11, 26, tzinfo=UTC)
MT = "calling_score"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_deployment(Path(tmp_path_factory.mktemp("a")))


def register(state: list[ModelVersion], deployed, hint: str | None = None) -> list[ModelVersion]:  # type: ignore[no-untyped-def]
    event = deployed.model_copy(update={"version_hint": hint})
    return lifecycle.plan_registration(state, event, NOW).apply_to(state)


def table(state: Sequence[ModelVersion]) -> dict[str, tuple[str, float]]:
    return {v.version: (v.status.value, v.weight) for v in state}


def test_first_is_production_then_candidates_take_a_tenth(deployed) -> None:  # type: ignore[no-untyped-def]
    plan = lifecycle.plan_registration([], deployed, NOW)
    assert [e.type for e in plan.events] == [
        RegistryEventType.VERSION_REGISTERED,
        RegistryEventType.TRAFFIC_CHANGED,
    ]
    state = plan.apply_to([])
    state = register(state, deployed)
    assert table(state) == {"v1.0": ("production", 0.9), "v1.1": ("staging", 0.1)}
    assert register(state, deployed, hint="v3.0")[-1].version == "v3.0"


def test_promote_ramp_then_full(deployed) -> None:  # type: ignore[no-untyped-def]
    state = register(register([], deployed), deployed)
    ramp = lifecycle.plan_promote(state, MT, "v1.1", {"v1.1": 0.5, "v1.0": 0.5}, "ramp", NOW)
    assert ramp.events[0].type is RegistryEventType.TRAFFIC_CHANGED
    assert ramp.events[0].weights == {"v1.0": 0.5, "v1.1": 0.5}
    state = ramp.apply_to(state)
    assert table(state)["v1.1"] == ("staging", 0.5)
    full = lifecycle.plan_promote(state, MT, "v1.1", None, "won", NOW)
    assert [e.type for e in full.events] == [
        RegistryEventType.VERSION_PROMOTED,
        RegistryEventType.VERSION_ARCHIVED,
    ]
    assert all(e.weights == {"v1.1": 1.0} for e in full.events)
    assert table(full.apply_to(state)) == {"v1.0": ("archived", 0.0), "v1.1": ("production", 1.0)}


def test_rollback_returns_traffic_to_production(deployed) -> None:  # type: ignore[no-untyped-def]
    state = register(register([], deployed), deployed)
    plan = lifecycle.plan_rollback(state, MT, "v1.1", "worse", NOW)
    assert plan.events[0].type is RegistryEventType.VERSION_ROLLED_BACK
    assert plan.events[0].weights == {"v1.0": 1.0}
    state = plan.apply_to(state)
    assert table(state) == {"v1.0": ("production", 1.0), "v1.1": ("rolled_back", 0.0)}
    with pytest.raises(IllegalTransition):
        lifecycle.plan_promote(state, MT, "v1.1", None, "", NOW)
    with pytest.raises(IllegalTransition):
        lifecycle.plan_rollback(state, MT, "v1.0", "", NOW)  # nothing earlier to return to


def test_rollback_of_production_restores_the_previous_one(deployed) -> None:  # type: ignore[no-untyped-def]
    state = register(register([], deployed), deployed)
    state = lifecycle.plan_promote(state, MT, "v1.1", None, "", NOW).apply_to(state)
    state = lifecycle.plan_rollback(state, MT, "v1.1", "", NOW).apply_to(state)
    assert table(state) == {"v1.0": ("production", 1.0), "v1.1": ("rolled_back", 0.0)}


@pytest.mark.parametrize(
    "weights, error",
    [
        ({"v1.0": 1.1, "v1.1": -0.1}, InvalidWeights),
        ({"v1.0": 0.5, "v1.1": 0.4}, InvalidWeights),
        ({"v1.0": math.nan}, InvalidWeights),
        ({"v1.0": 1e308, "v1.1": 1e308}, InvalidWeights),  # their sum used to overflow: a 500
        ({}, InvalidWeights),
        ({"v1.0": 0.5, "v9.9": 0.5}, UnknownVersion),
    ],
)
def test_bad_weights_refused(deployed, weights: dict[str, float], error: type) -> None:  # type: ignore[no-untyped-def]
    state = register(register([], deployed), deployed)
    with pytest.raises(error):
        lifecycle.plan_set_weights(state, MT, weights, "", NOW)


def test_unknown_version_refused(deployed) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownVersion):
        lifecycle.plan_promote(register([], deployed), MT, "v7.0", None, "", NOW)


operations = st.lists(
    st.tuples(
        st.sampled_from(["register", "promote", "ramp", "rollback", "weights"]),
        st.integers(0, 9),
        st.integers(1, 99),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_any_sequence_keeps_the_invariants(deployed, ops) -> None:  # type: ignore[no-untyped-def]
    """Weights sum to 1, at most one production, events carry the resulting weight map."""
    state: list[ModelVersion] = []
    for op, pick, share in ops:
        names = [v.version for v in state]
        target = names[pick % len(names)] if names else "v1.0"
        production = lifecycle.production_of(state)
        try:
            if op == "register":
                plan = lifecycle.plan_registration(state, deployed, NOW)
            elif op == "promote":
                plan = lifecycle.plan_promote(state, MT, target, None, "", NOW)
            elif op == "ramp" and production is not None and production.version != target:
                weights = {target: share / 100, production.version: 1 - share / 100}
                plan = lifecycle.plan_promote(state, MT, target, weights, "", NOW)
            elif op == "rollback":
                plan = lifecycle.plan_rollback(state, MT, target, "", NOW)
            elif op == "weights" and production is not None:
                plan = lifecycle.plan_set_weights(
                    state,
                    MT,
                    {production.version: 1 - share / 100, target: share / 100}
                    if target != production.version
                    else {target: 1.0},
                    "",
                    NOW,
                )
            else:
                continue
        except RegistryError:
            continue
        state = plan.apply_to(state)
        assert abs(sum(v.weight for v in state) - 1.0) < 1e-6
        assert sum(v.status is Status.PRODUCTION for v in state) == 1
        assert all(v.weight == 0 for v in state if v.status not in lifecycle.SERVING)
        for event in plan.events:
            assert event.weights == lifecycle.weights_of(state)


def test_a_second_deployment_of_one_retrain_command_changes_nothing(deployed) -> None:  # type: ignore[no-untyped-def]
    first = deployed.model_copy(update={"command_id": "cmd-1"})
    state = lifecycle.plan_registration([], first, NOW).apply_to([])
    zombie = first.model_copy(update={"deployment_id": "late", "command_id": "cmd-1"})
    plan = lifecycle.plan_registration(state, zombie, NOW)
    assert plan.insert is None and not plan.changes and not plan.events
    assert plan.outcome == lifecycle.DUPLICATE_COMMAND
    other = first.model_copy(update={"deployment_id": "next", "command_id": "cmd-2"})
    assert lifecycle.plan_registration(state, other, NOW).insert is not None


def test_keep_production_archives_the_candidate_and_leaves_production(deployed) -> None:  # type: ignore[no-untyped-def]
    state = register(register([], deployed), deployed)
    plan = lifecycle.plan_keep_production(state, MT, "v1.1", "keep_production: maximum", NOW)
    assert [(e.type, e.version, e.weights) for e in plan.events] == [
        (RegistryEventType.VERSION_ARCHIVED, "v1.1", {"v1.0": 1.0})
    ]
    state = plan.apply_to(state)
    assert table(state) == {"v1.0": ("production", 1.0), "v1.1": ("archived", 0.0)}
    with pytest.raises(IllegalTransition):  # only a staging candidate ends so
        lifecycle.plan_keep_production(state, MT, "v1.0", "no", NOW)


def test_rolling_back_production_never_restores_a_candidate_kept_out(deployed) -> None:  # type: ignore[no-untyped-def]
    state = register(register([], deployed), deployed)  # v1.0 production, v1.1 staging
    state = lifecycle.plan_promote(state, MT, "v1.1", None, "won", NOW).apply_to(state)
    state = register(state, deployed)  # v1.2, kept out
    state = lifecycle.plan_keep_production(state, MT, "v1.2", "kept", NOW).apply_to(state)
    state = lifecycle.plan_rollback(state, MT, "v1.1", "bad", NOW).apply_to(state)
    assert table(state) == {
        "v1.0": ("production", 1.0),
        "v1.1": ("rolled_back", 0.0),
        "v1.2": ("archived", 0.0),
    }


def test_rolling_back_production_restores_only_a_version_that_served_as_production(
    deployed,
) -> None:  # type: ignore[no-untyped-def]
    """v1.1 kept out (archived, never production), v1.2 promoted: rolling back v1.2 returns to
    v1.0, the production before it, not to v1.1, the newest archived version older than it."""
    state = register(register([], deployed), deployed)  # v1.0 production, v1.1 staging
    state = lifecycle.plan_keep_production(state, MT, "v1.1", "kept", NOW).apply_to(state)
    state = register(state, deployed)  # v1.2 staging
    state = lifecycle.plan_promote(state, MT, "v1.2", None, "won", NOW).apply_to(state)
    assert {v.version: v.was_production for v in state} == {
        "v1.0": True,
        "v1.1": False,
        "v1.2": True,
    }
    plan = lifecycle.plan_rollback(state, MT, "v1.2", "bad", NOW)
    assert [(e.type, e.version) for e in plan.events] == [
        (RegistryEventType.VERSION_ROLLED_BACK, "v1.2"),
        (RegistryEventType.VERSION_PROMOTED, "v1.0"),
    ]
    state = plan.apply_to(state)
    assert table(state) == {
        "v1.0": ("production", 1.0),
        "v1.1": ("archived", 0.0),
        "v1.2": ("rolled_back", 0.0),
    }
