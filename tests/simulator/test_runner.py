"""The simulated app: determinism, the events it emits, its ground truth, scenarios and faults."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.model_types import ModelTypeCatalog
from contracts.validation import OutcomeRejected, validate_outcome
from simulator.policy import ContactPolicy
from simulator.runner import (
    DefaultScorer,
    RateLimiter,
    Simulation,
    SimulationConfig,
)
from simulator.scenarios import Scenario, fault_path
from simulator.world import FEATURE_COUNT, World
from tests.simulator.conftest import ListPublisher, OracleScorer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CATALOG = ModelTypeCatalog()


def simulate(
    tmp_path: Path,
    scorer: object | None = None,
    world: World | None = None,
    **config: object,
) -> tuple[Simulation, ListPublisher]:
    publisher = ListPublisher()
    simulation = Simulation(
        SimulationConfig(faults_dir=tmp_path / "faults", **config),  # type: ignore[arg-type]
        scorer or DefaultScorer(),  # type: ignore[arg-type]
        publisher,
        clock=lambda: NOW,
        world=world,
    )
    simulation.run()
    return simulation, publisher


def test_same_seed_same_messages(tmp_path: Path, world: World) -> None:
    _, first = simulate(
        tmp_path, world=world, events=200, seed=3, invalid_fraction=0.1, duplicate_fraction=0.1
    )
    _, second = simulate(
        tmp_path, world=world, events=200, seed=3, invalid_fraction=0.1, duplicate_fraction=0.1
    )
    _, other = simulate(tmp_path, world=world, events=200, seed=4)
    assert first.messages == second.messages
    assert first.messages != other.messages


def test_valid_events_pass_the_contract_and_carry_the_serving_version(
    tmp_path: Path, world: World
) -> None:
    _, publisher = simulate(tmp_path, scorer=OracleScorer(world, "v1.3"), world=world, events=100)
    for key, value in publisher.messages:
        event = validate_outcome(value, CATALOG, NOW)
        assert event.subject_id == key
        assert event.model_version == "v1.3"
        assert len(event.features) == FEATURE_COUNT
        assert 0.0 <= event.outcome_score <= 1.0


def test_without_a_model_events_are_v0_0_with_the_default_score(
    tmp_path: Path, world: World
) -> None:
    simulation, publisher = simulate(tmp_path, world=world, events=50)
    events = [validate_outcome(value, CATALOG, NOW) for _, value in publisher.messages]
    assert {(e.model_version, e.prediction) for e in events} == {("v0.0", 0.5)}
    assert simulation.truth.valid_by_version("calling_score") == {"v0.0": 50}


def test_invalid_messages_earn_exactly_the_reason_the_ground_truth_records(
    tmp_path: Path, world: World
) -> None:
    simulation, publisher = simulate(tmp_path, world=world, events=300, invalid_fraction=1.0)
    seen: dict[str, int] = {}
    for _, value in publisher.messages:
        with pytest.raises(OutcomeRejected) as rejected:
            validate_outcome(value, CATALOG, NOW)
        seen[rejected.value.reason.value] = seen.get(rejected.value.reason.value, 0) + 1
    assert seen == dict(simulation.truth.invalid_by_reason)
    assert len(seen) == 6  # every kind occurs in 300 draws
    assert simulation.truth.valid_events == 0


def test_duplicates_repeat_earlier_events_byte_for_byte(tmp_path: Path, world: World) -> None:
    simulation, publisher = simulate(tmp_path, world=world, events=400, duplicate_fraction=0.25)
    truth = simulation.truth
    values = [value for _, value in publisher.messages]
    assert truth.duplicates > 50
    assert len(set(values)) == truth.valid_events
    assert len(values) == truth.messages_produced == 400
    ids = [json.loads(v)["event_id"] for v in values]
    assert len(set(ids)) == truth.valid_events


@given(st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.integers(0, 10_000))
@settings(max_examples=15, deadline=None)
def test_ground_truth_adds_up(invalid: float, duplicate: float, seed: int) -> None:
    publisher = ListPublisher()
    simulation = Simulation(
        SimulationConfig(
            events=60,
            seed=seed,
            invalid_fraction=invalid,
            duplicate_fraction=duplicate,
            faults_dir=Path("/nonexistent"),
        ),
        DefaultScorer(),
        publisher,
        clock=lambda: NOW,
        world=WORLD,
    )
    truth = simulation.run()
    assert truth.messages_produced == len(publisher.messages) == 60
    assert truth.valid_events + truth.invalid_events + truth.duplicates == 60
    assert sum(truth.invalid_by_reason.values()) == truth.invalid_events
    document = truth.as_dict()
    assert (
        sum(
            row["events"]
            for versions in document["valid"].values()
            for days in versions.values()
            for row in days.values()
        )
        == truth.valid_events
    )
    assert json.loads(json.dumps(document)) == document


WORLD = World()


def test_ground_truth_is_written_as_json(tmp_path: Path, world: World) -> None:
    simulation, _ = simulate(tmp_path, world=world, events=30, invalid_fraction=0.2)
    path = tmp_path / "truth" / "gt.json"
    simulation.truth.write(path)
    document = json.loads(path.read_text())
    assert document["valid"]["calling_score"]["v0.0"]["2026-11-26"]["events"] == (
        simulation.truth.valid_events
    )
    assert document["messages_produced"] == 30


def test_several_model_types(tmp_path: Path, world: World) -> None:
    simulation, _ = simulate(
        tmp_path, world=world, events=200, model_types=("calling_score", "outcome_prediction")
    )
    assert set(simulation.truth.valid) == {"calling_score", "outcome_prediction"}


def test_bad_candidate_waits_for_a_production_model_then_writes_the_fault(
    tmp_path: Path, world: World
) -> None:
    simulation, _ = simulate(tmp_path, world=world, events=20, scenario=Scenario.BAD_CANDIDATE)
    assert not fault_path(tmp_path / "faults", "calling_score").exists()
    simulation, _ = simulate(
        tmp_path,
        scorer=OracleScorer(world),
        world=world,
        events=20,
        scenario=Scenario.BAD_CANDIDATE,
    )
    path = fault_path(tmp_path / "faults", "calling_score")
    assert float(path.read_text()) == 1.0
    assert simulation.truth.faults_written[0]["strength"] == 1.0


def test_good_candidate_degrades_the_first_model_only_on_a_fresh_type(
    tmp_path: Path, world: World
) -> None:
    simulate(
        tmp_path,
        scorer=OracleScorer(world),
        world=world,
        events=20,
        scenario=Scenario.GOOD_CANDIDATE,
    )
    assert not fault_path(tmp_path / "faults", "calling_score").exists()
    simulation, _ = simulate(tmp_path, world=world, events=20, scenario=Scenario.GOOD_CANDIDATE)
    assert float(fault_path(tmp_path / "faults", "calling_score").read_text()) == 0.6
    assert len(simulation.truth.faults_written) == 1


@pytest.mark.parametrize("scenario", [Scenario.STEADY, Scenario.AA])
def test_steady_and_aa_write_no_fault(tmp_path: Path, world: World, scenario: Scenario) -> None:
    simulate(tmp_path, world=world, events=20, scenario=scenario)
    simulate(tmp_path, scorer=OracleScorer(world), world=world, events=20, scenario=scenario)
    assert not (tmp_path / "faults").exists()


def test_rate_limiter_paces_and_does_not_burst_after_a_stall() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(10.0, monotonic=lambda: clock[0], sleep=sleep)
    for i in range(5):
        limiter.wait(i)
    assert clock[0] == pytest.approx(0.4)
    clock[0] += 5.0  # a stall
    limiter.wait(5)
    limiter.wait(6)
    assert slept[-1] == pytest.approx(0.1)  # back to 10/s, no catch-up burst


def test_policy_contacts_about_the_top_share_and_random_ties() -> None:
    policy = ContactPolicy(share=0.3, explore=0.0, window=200)
    rng = np.random.default_rng(0)
    scores = rng.random(5_000)
    contacted = [policy.should_contact("t", "v1.0", s, rng.random(), 1.0) for s in scores]
    assert 0.27 < np.mean(contacted) < 0.33
    assert np.mean(scores[np.array(contacted)]) > 0.8
    constant = [policy.should_contact("t", "v0.0", 0.5, rng.random(), 1.0) for _ in range(5_000)]
    assert 0.27 < np.mean(constant) < 0.33


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5, float("nan")])
def test_a_fault_strength_outside_zero_one_is_refused(tmp_path: Path, strength: float) -> None:
    from simulator.scenarios import write_fault

    with pytest.raises(ValueError):
        write_fault(tmp_path, "calling_score", strength)
    assert not any(tmp_path.iterdir())


def test_every_event_carries_served_at_not_after_occurred_at(tmp_path: Path, world: World) -> None:
    _, publisher = simulate(tmp_path, world=world, events=300, seed=5, invalid_fraction=0.1)
    valid = 0
    for _key, value in publisher.messages:
        try:
            document = json.loads(value)
        except ValueError:
            continue  # the deliberately truncated JSON
        assert "served_at" in document
        try:
            event = validate_outcome(value, CATALOG, NOW)
        except OutcomeRejected:
            continue  # the deliberately invalid messages
        assert event.served_at is not None and event.served_at <= event.occurred_at
        valid += 1
    assert valid >= 250
