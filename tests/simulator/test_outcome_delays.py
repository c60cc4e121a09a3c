"""The hostile world's outcome delays: served_at <= occurred_at, positives soon, negatives at the window's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.events import OutcomeEvent
from contracts.model_types import ModelTypeCatalog
from contracts.validation import validate_outcome
from simulator.delays import OutcomeDelays
from simulator.runner import Simulation, SimulationConfig
from simulator.settings import SimulatorSettings
from simulator.world import World
from tests.simulator.conftest import ListPublisher, OracleScorer

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = 5.0
FRACTION = 0.1
CATALOG = ModelTypeCatalog()


class Clock:
    """Event time for the simulation: 20 ms pass per reading, a sleep passes its length."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=20)
        return self.now

    def monotonic(self) -> float:
        return (self.now - START).total_seconds()

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def run(world: World, tmp_path: Path, events: int, **config: object) -> tuple[Simulation, Clock]:
    clock = Clock()
    simulation = Simulation(
        SimulationConfig(
            events=events,
            seed=7,
            faults_dir=tmp_path / "faults",
            outcome_delays=OutcomeDelays({"calling_score": WINDOW}, FRACTION),
            **config,  # type: ignore[arg-type]
        ),
        OracleScorer(world, "v1.2"),
        ListPublisher(),
        clock=clock,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        world=world,
    )
    simulation.run()
    return simulation, clock


def sent(simulation: Simulation, now: datetime) -> list[OutcomeEvent]:
    publisher = simulation.publisher
    assert isinstance(publisher, ListPublisher)
    return [validate_outcome(value, CATALOG, now) for _, value in publisher.messages]


def test_outcomes_are_known_after_serving_positives_soon_negatives_at_the_window_end(
    world: World, tmp_path: Path
) -> None:
    simulation, clock = run(world, tmp_path, 600)
    events = sent(simulation, clock.now)
    assert len(events) == simulation.truth.valid_events == 600  # every outcome, once it was known
    assert simulation.truth.outcomes_unreported == 0
    assert len({e.event_id for e in events}) == 600
    positives = [e for e in events if e.positive_outcome]
    negatives = [e for e in events if not e.positive_outcome]
    assert positives and negatives
    delays = {}
    for event in events:
        assert event.served_at is not None and event.served_at <= event.occurred_at
        delays[event.event_id] = event.occurred_at - event.served_at
    assert all(delays[e.event_id] <= timedelta(seconds=FRACTION * WINDOW) for e in positives)
    assert {delays[e.event_id] for e in negatives} == {timedelta(seconds=WINDOW)}
    # Reported as they became known: in occurred_at order, so early on the positives lead.
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    first_window = [e for e in events if e.occurred_at < START + timedelta(seconds=WINDOW)]
    assert first_window and all(e.positive_outcome for e in first_window)


def test_an_app_that_stops_leaves_the_outcomes_not_yet_known_unreported(
    world: World, tmp_path: Path
) -> None:
    simulation, clock = run(world, tmp_path, 600, outcome_wait_seconds=0.0)
    events = sent(simulation, clock.now)
    assert simulation.truth.outcomes_unreported > 0
    assert len(events) + simulation.truth.outcomes_unreported == 600
    assert simulation.truth.as_dict()["outcomes_unreported"] == simulation.truth.outcomes_unreported


def test_off_by_default_and_on_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SimulatorSettings().simulate_outcome_delays is False
    assert SimulationConfig().outcome_delays is None  # the demo: outcomes reported as served
    types = tmp_path / "model_types.yaml"
    types.write_text(
        "model_types:\n  - {name: lead_score, feature_count: 23, target: positive_outcome,"
        " loss: bce, outcome_window_seconds: 7}\n"
    )
    monkeypatch.setenv("RELEARN_SIMULATE_OUTCOME_DELAYS", "true")
    monkeypatch.setenv("RELEARN_SIMULATE_POSITIVE_DELAY_FRACTION", "0.25")
    monkeypatch.setenv("RELEARN_MODEL_TYPES_FILE", str(types))
    settings = SimulatorSettings()
    assert settings.simulate_outcome_delays
    delays = OutcomeDelays.of(
        settings.model_types(),
        ["lead_score", "calling_score"],
        settings.simulate_positive_delay_fraction,
    )
    assert delays.windows == {"lead_score": 7.0, "calling_score": 86_400.0}
    assert delays.delay("lead_score", True, 0.5) == pytest.approx(0.875)
    assert delays.delay("lead_score", False, 0.5) == 7.0
    with pytest.raises(ValueError, match="unknown model type"):
        OutcomeDelays.of(settings.model_types(), ["nope"], 0.1)
