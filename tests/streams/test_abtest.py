"""Unit tests of the A/B accumulation, ramp and command rules (streams/abtest.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from contracts.events import RegistryCommandType, RegistryEventOccurred, RegistryEventType
from streams import abtest
from streams.registry_view import ModelTypeView, apply_registry_event

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _view(weights: dict[str, float], statuses: dict[str, str]) -> ModelTypeView:
    return ModelTypeView("calling_score", statuses, weights, changed_at=T0)


def _run(
    state: abtest.AbState,
    experiment: abtest.Experiment,
    rate_p: float,
    rate_c: float,
    n: int,
    seed: int = 1,
) -> tuple[abtest.AbState, list]:
    rng = random.Random(seed)
    decisions = []
    for _ in range(n):
        on_candidate = rng.random() < experiment.candidate_weight
        version = experiment.candidate if on_candidate else experiment.production
        positive = rng.random() < (rate_c if on_candidate else rate_p)
        state = abtest.observe(state, experiment, version, positive, 0.5, float(positive), T0)
        state, decision = abtest.look(state, 0.05, 200)
        if decision is not None:
            decisions.append(decision)
    return state, decisions


@pytest.mark.parametrize(("current", "expected"), [(0.1, 0.5), (0.5, 1.0), (0.2, 0.5), (1.0, 1.0)])
def test_ramp(current: float, expected: float) -> None:
    assert abtest.next_ramp_weight(current) == expected


def test_no_experiment_without_production_and_candidate() -> None:
    assert abtest.experiment_of(None) is None
    assert abtest.experiment_of(_view({"v1.0": 1.0}, {"v1.0": "production"})) is None
    staged_at_zero = _view({"v1.0": 1.0, "v1.1": 0.0}, {"v1.0": "production", "v1.1": "staging"})
    assert abtest.experiment_of(staged_at_zero) is None


def test_a_worse_candidate_is_rolled_back_once() -> None:
    view = _view({"v1.0": 0.9, "v1.1": 0.1}, {"v1.0": "production", "v1.1": "staging"})
    experiment = abtest.experiment_of(view)
    assert experiment is not None and experiment.candidate == "v1.1"
    state, decisions = _run(abtest.AbState(), experiment, 0.5, 0.2, 20_000)
    assert len(decisions) == 1  # once per experiment, however long it keeps running
    command = abtest.command_for(state, decisions[0], "calling_score")
    assert command.type is RegistryCommandType.ROLLBACK and command.version == "v1.1"
    assert command.evidence is not None and command.evidence["verdict"] == "rollback"
    again = abtest.command_for(state, decisions[0], "calling_score")
    assert again.command_id == command.command_id


def test_a_better_candidate_is_promoted_to_the_next_ramp_step() -> None:
    view = _view({"v1.0": 0.9, "v1.1": 0.1}, {"v1.0": "production", "v1.1": "staging"})
    experiment = abtest.experiment_of(view)
    assert experiment is not None
    state, decisions = _run(abtest.AbState(), experiment, 0.3, 0.6, 20_000)
    assert [d.verdict.value for d in decisions] == ["promote"]
    command = abtest.command_for(state, decisions[0], "calling_score")
    assert command.type is RegistryCommandType.PROMOTE
    assert command.weights == {"v1.1": 0.5, "v1.0": 0.5}


def test_a_weight_change_starts_a_new_experiment() -> None:
    first = abtest.experiment_of(
        _view({"v1.0": 0.9, "v1.1": 0.1}, {"v1.0": "production", "v1.1": "staging"})
    )
    second = abtest.experiment_of(
        _view({"v1.0": 0.5, "v1.1": 0.5}, {"v1.0": "production", "v1.1": "staging"})
    )
    assert first is not None and second is not None and first.key() != second.key()
    state, _ = _run(abtest.AbState(), first, 0.5, 0.5, 500)
    assert state.production_arm.samples > 0
    state = abtest.observe(state, second, "v1.0", True, 0.5, 1.0, T0)
    assert state.production_arm.samples == 1 and state.candidate_arm.samples == 0
    assert state.candidate_weight == 0.5
    assert abtest.AbState.from_dict(state.to_dict()) == state


def test_outcomes_before_the_change_are_not_counted() -> None:
    view = ModelTypeView(
        "m", {"v1.0": "production", "v1.1": "staging"}, {"v1.0": 0.9, "v1.1": 0.1}, changed_at=T0
    )
    experiment = abtest.experiment_of(view)
    assert experiment is not None
    earlier = datetime(2026, 11, 26, 11, 59, tzinfo=UTC)
    state = abtest.observe(abtest.AbState(), experiment, "v1.1", True, 0.5, 1.0, earlier)
    assert state.candidate_arm.samples == 0


def test_registry_view_follows_the_ramp_and_rollback() -> None:
    def event(kind: RegistryEventType, version: str, status: str, weights: dict[str, float]):
        return RegistryEventOccurred(
            type=kind, model_type="m", version=version, status=status, weights=weights
        )

    view = apply_registry_event(
        None, event(RegistryEventType.VERSION_PROMOTED, "v1.0", "production", {"v1.0": 1.0})
    )
    assert view.production == "v1.0" and view.candidate is None
    view = apply_registry_event(
        view,
        event(RegistryEventType.VERSION_REGISTERED, "v1.1", "staging", {"v1.0": 0.9, "v1.1": 0.1}),
    )
    assert view.candidate == "v1.1" and view.changed_at is not None
    view = apply_registry_event(
        view,
        event(
            RegistryEventType.VERSION_ROLLED_BACK, "v1.1", "rolled_back", {"v1.0": 1.0, "v1.1": 0.0}
        ),
    )
    assert view.production == "v1.0" and view.candidate is None
    rejected = RegistryEventOccurred(
        type=RegistryEventType.DEPLOYMENT_REJECTED, model_type="m", version=None, weights={}
    )
    assert apply_registry_event(view, rejected) == view
    refused = rejected.model_copy(update={"type": RegistryEventType.ARTIFACT_REJECTED})
    assert apply_registry_event(view, refused) == view
    # either rejection answers the retrain command it names: streams' retrain in flight ends
    for kind in (RegistryEventType.DEPLOYMENT_REJECTED, RegistryEventType.ARTIFACT_REJECTED):
        answer = rejected.model_copy(update={"type": kind, "details": {"command_id": "c7"}})
        assert apply_registry_event(view, answer).answered == ("c7",)
