"""Component tests of the worker's logic over plain dicts: crashes with lost writes change nothing.

A crash is modelled as the streams worker allows it: offsets committed only after the changelog was
flushed, so the durable state at a crash is, key by key, anything between the state at the last
commit and the state just before the crash; processing resumes at the committed offset.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from contracts.model_types import ModelTypeCatalog
from streams import processing, rules
from streams.processing import Output, StreamRules

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RULES = StreamRules(
    retrain_sample_threshold=97,
    retrain_max_age_seconds=7 * 86_400.0,
)
CATALOG = ModelTypeCatalog()
TYPES = ("calling_score", "outcome_prediction")


def forwarded_sample(**changes: Any) -> bytes:
    """A training sample as streams forwards it, with `changes` applied."""
    sample = {
        "event_id": "e1",
        "model_type": "calling_score",
        "model_version": "v0.0",
        "features": [0.0] * 23,
        "prediction": 0.5,
        "outcome_score": 0.5,
        "positive_outcome": True,
        "occurred_at": "2026-11-26T12:00:00Z",
        **changes,
    }
    return orjson.dumps(sample)


def candidate_under_test() -> Any:
    """The registry's view while v1.1 is the staging candidate against production v1.0."""
    from streams.registry_view import ModelTypeView

    return ModelTypeView(
        "calling_score",
        {"v1.0": "production", "v1.1": "staging"},
        {"v1.0": 0.9, "v1.1": 0.1},
        changed_at=NOW - timedelta(hours=1),
    )


def _outcomes(rng: random.Random, count: int) -> tuple[list[tuple[int, bytes]], dict[str, Any]]:
    """(partition, value) messages with 3% repeats and 2% poison, and their ground truth."""
    messages: list[tuple[int, bytes]] = []
    truth: dict[str, Any] = {"events": set(), "daily": Counter(), "per_type": Counter()}
    sent: list[tuple[int, bytes]] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.03 and sent:
            messages.append(rng.choice(sent))
            continue
        partition = rng.randrange(4)
        if roll < 0.05:
            messages.append((partition, b'{"event_id": "broken'))
            continue
        model_type = rng.choice(TYPES)
        version = rng.choice(("v0.0", "v1.0"))
        day = NOW - timedelta(days=rng.randrange(3))
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "model_type": model_type,
            "model_version": version,
            "subject_id": f"s{i}",
            "features": [0.5] * 23,
            "prediction": rng.random(),
            "outcome_score": rng.random(),
            "positive_outcome": rng.random() < 0.5,
            "occurred_at": day.isoformat(),
        }
        message = (partition, orjson.dumps(event))
        sent.append(message)
        messages.append(message)
        truth["events"].add(event["event_id"])
        truth["daily"][(model_type, version, day.date().isoformat())] += 1
        truth["per_type"][model_type] += 1
    return messages, truth


def _crash(durable: dict[str, Any], current: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Each key's value survives or reverts to its value at the last commit."""
    survived: dict[str, Any] = {}
    for key in set(durable) | set(current):
        value = current.get(key) if rng.random() < 0.5 else durable.get(key)
        if value is not None:
            survived[key] = copy.deepcopy(value)
    return survived


def _run_with_crashes(
    messages: list[Any],
    step: Any,
    tables: list[dict[str, Any]],
    produced: list[Any],
    rng: random.Random,
    crashes: int,
) -> None:
    """Process messages in order; crash `crashes` times, resuming at the last commit.

    What was produced since the last commit loses a random suffix (unacknowledged sends).
    """
    crash_points = sorted(rng.sample(range(1, len(messages)), crashes))
    committed, committed_tables, committed_produced = 0, copy.deepcopy(tables), 0
    position = 0
    while position < len(messages):
        step(position, messages[position])
        position += 1
        if rng.random() < 0.02:  # a commit: producer and changelog flushed, then the offset
            committed, committed_tables = position, copy.deepcopy(tables)
            committed_produced = len(produced)
        if crash_points and position >= crash_points[0]:
            crash_points.pop(0)
            for i, table in enumerate(tables):
                survived = _crash(committed_tables[i], table, rng)
                table.clear()
                table.update(survived)
            del produced[rng.randint(committed_produced, len(produced)) :]
            position = committed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tables_equal_ground_truth_through_crashes(seed: int) -> None:
    rng = random.Random(seed)
    messages, truth = _outcomes(rng, 3000)

    seen: dict[str, Any] = {}
    rejections: dict[str, Any] = {}
    forwarded: list[tuple[int, int, bytes]] = []  # the training-samples log, raw repeats included

    def outcome_step(offset: int, message: tuple[int, bytes]) -> None:
        partition, value = message
        result = processing.handle_outcome(value, partition, offset, seen, rejections, CATALOG, NOW)
        if result.forward is not None:
            forwarded.append((partition, offset, result.forward))

    _run_with_crashes(messages, outcome_step, [seen, rejections], forwarded, rng, crashes=3)
    distinct = {orjson.loads(v)["event_id"] for _, _, v in forwarded}
    assert distinct == truth["events"]

    states: dict[str, Any] = {}
    performance: dict[str, Any] = {}
    emitted: list[processing.Emitted] = []

    # every retrain counts as answered at once (timeout 0): one command per crossing
    answered_at_once = dataclasses.replace(RULES, retrain_pending_timeout_seconds=0.0)

    def sample_step(_: int, message: tuple[int, int, bytes]) -> None:
        partition, offset, value = message
        emitted.extend(
            processing.handle_sample(
                value, partition, offset, states, performance, {}, answered_at_once, 1000.0
            )
        )

    _run_with_crashes(forwarded, sample_step, [states, performance], emitted, rng, crashes=3)

    rows = {
        (row["model_type"], row["version"], row["day"]): row["sample_count"]
        for model_type in TYPES
        for row in processing.performance_rows(performance, model_type, 7, NOW)
    }
    assert rows == dict(truth["daily"])
    commands = {orjson.loads(e.value)["command_id"] for e in emitted if e.output == Output.RETRAIN}
    assert len(commands) == sum(n // 97 for n in truth["per_type"].values())
    for model_type in TYPES:
        view = processing.samples_view(states, model_type, 97)
        assert view["new_samples"] == truth["per_type"][model_type] % 97
        # what the web views wait for before they show a count: its rows add up to it
        counted = processing.ModelTypeState.load(states[model_type]).samples
        assert counted == truth["per_type"][model_type]
        assert processing.performance_samples(performance, model_type) == counted


def test_poison_is_counted_per_reason_and_a_replay_does_not_recount() -> None:
    seen: dict[str, Any] = {}
    rejections: dict[str, Any] = {}
    for offset, raw in enumerate([b"nope", b"{}", b"x" * 70_000]):
        result = processing.handle_outcome(raw, 0, offset, seen, rejections, CATALOG, NOW)
        assert result.rejected is not None
    processing.handle_outcome(b"nope", 0, 0, seen, rejections, CATALOG, NOW)  # a replay
    assert processing.rejection_counts(rejections) == {
        "invalid_json": 1,
        "schema": 1,
        "too_large": 1,
    }


def test_schedule_fires_once_and_resets_the_counter() -> None:
    states: dict[str, Any] = {}
    processing.handle_sample(forwarded_sample(), 0, 0, states, {}, {}, RULES, 0.0)
    before = dict(states)
    week = RULES.retrain_max_age_seconds
    assert processing.handle_schedule("calling_score", states, {}, RULES, week - 1) == []
    fired = processing.handle_schedule("calling_score", states, {}, RULES, week)
    assert [orjson.loads(e.value)["reason"] for e in fired] == ["schedule"]
    # a crash that lost the state change: the check fires again under the same command id
    assert processing.handle_schedule("calling_score", dict(before), {}, RULES, week) == fired
    assert processing.handle_schedule("calling_score", states, {}, RULES, 3 * week) == []
    assert processing.samples_view(states, "calling_score", 97)["new_samples"] == 0


def test_a_new_counter_lineage_follows_its_first_sample() -> None:
    """A crash that loses a new counter's first write must not change its command ids."""
    sample = forwarded_sample()
    rules_one = processing.StreamRules(1, RULES.retrain_max_age_seconds, 0.05, 200)
    first = processing.handle_sample(sample, 0, 0, {}, {}, {}, rules_one, 0.0)
    again = processing.handle_sample(sample, 0, 0, {}, {}, {}, rules_one, 5.0)
    assert len(first) == 1
    assert orjson.loads(first[0].value)["command_id"] == orjson.loads(again[0].value)["command_id"]


def test_ab_state_survives_a_registry_view_not_read_yet() -> None:
    view = candidate_under_test()
    states: dict[str, Any] = {}
    served = NOW.isoformat()
    value = forwarded_sample(
        event_id="e", model_version="v1.1", occurred_at=served, served_at=served, subject_id="s"
    )
    processing.handle_sample(value, 0, 0, states, {}, {"calling_score": view}, RULES, 0.0)
    processing.handle_sample(value, 0, 1, states, {}, {}, RULES, 0.0, registry_known=False)
    shown = processing.abtest_view(states, "calling_score")
    assert shown["candidate"]["waiting"] == 1 and shown["running"] is True
    processing.handle_sample(value, 0, 2, states, {}, {}, RULES, 0.0, registry_known=True)
    shown = processing.abtest_view(states, "calling_score")
    assert shown["running"] is False and shown["candidate"]["waiting"] == 1  # kept as it ended


def test_the_threshold_waits_for_a_running_canary() -> None:
    from streams.registry_view import ModelTypeView

    under_test = candidate_under_test()
    decided = ModelTypeView(
        "calling_score",
        {"v1.0": "production", "v1.1": "rolled_back"},
        {"v1.0": 1.0},
        changed_at=NOW,
    )
    states: dict[str, Any] = {}
    threshold = RULES.retrain_sample_threshold

    def sample(offset: int, view: ModelTypeView) -> list[processing.Emitted]:
        event = forwarded_sample(
            event_id=f"e{offset}", model_version="v1.0", occurred_at=NOW.isoformat()
        )
        emitted = processing.handle_sample(
            event, 0, offset, states, {}, {"calling_score": view}, RULES, 0.0
        )
        return [e for e in emitted if e.output is Output.RETRAIN]

    held = [e for offset in range(threshold + 10) for e in sample(offset, under_test)]
    assert held == []
    fired = sample(threshold + 10, decided)
    assert [orjson.loads(e.value)["new_samples"] for e in fired] == [threshold + 11]
    assert sample(threshold + 11, decided) == []


def test_a_changelog_record_reads_back_as_the_state_it_wrote() -> None:
    from streams.tables import MODEL_TYPES, ChangelogTable

    table = ChangelogTable.of(MODEL_TYPES)
    processing.handle_sample(forwarded_sample(), 0, 0, table, {}, {}, RULES, 0.0)
    restored = ChangelogTable.of(MODEL_TYPES)
    for key, value in table.take_changed():
        restored.restore(key, value)
    assert processing.samples_view(restored, "calling_score", 97) == processing.samples_view(
        table, "calling_score", 97
    )
    assert processing.abtest_view(restored, "calling_score") == processing.abtest_view(
        table, "calling_score"
    )
    assert table.take_changed() is not None and not table.changed


@pytest.mark.parametrize(
    "changes",
    [{"prediction": 1e200}, {"outcome_score": 7.0}, {"occurred_at": "9999-12-31T23:59:59-01:00"}],
)
def test_a_forwarded_sample_out_of_range_is_malformed_not_a_crash(changes: dict) -> None:
    """Under a running A/B test a prediction of 1e200 overflowed (its square) and crashed the
    worker on every restart; such a record on training-samples is poison, dead-lettered."""
    sample = forwarded_sample(
        **{"event_id": "e", "model_version": "v1.1", "occurred_at": NOW.isoformat(), **changes}
    )
    states: dict[str, Any] = {}
    views = {"calling_score": candidate_under_test()}
    with pytest.raises(processing.MalformedSample):
        processing.handle_sample(sample, 0, 0, states, {}, views, RULES, 0.0)
    assert states == {}


def test_a_manual_retrain_command_starts_the_counter_again() -> None:
    from contracts.events import RetrainReason, RetrainRequested
    from streams.registry_view import apply_retrain_command

    states: dict[str, Any] = {}
    for offset in range(40):
        processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, {}, RULES, 100.0
        )
    requested_at = datetime.fromtimestamp(200.0, UTC)
    own = RetrainRequested(
        model_type="calling_score", reason=RetrainReason.SAMPLE_THRESHOLD, requested_at=requested_at
    )
    now = datetime.fromtimestamp(201.0, UTC)
    assert apply_retrain_command(None, own, now) is None  # streams' own are counted already
    manual = RetrainRequested(
        model_type="calling_score", reason=RetrainReason.MANUAL, requested_at=requested_at
    )
    views = {"calling_score": apply_retrain_command(None, manual, now)}
    # one dated beyond the clock skew is refused: as the newest it would hide every real one
    future = manual.model_copy(update={"requested_at": now + timedelta(minutes=6)})
    assert apply_retrain_command(views["calling_score"], future, now) is views["calling_score"]
    assert apply_retrain_command(None, future, now) is None
    # the schedule check applies it while no sample arrives
    assert processing.handle_schedule("calling_score", states, views, RULES, 201.0) == []
    view = processing.samples_view(states, "calling_score", RULES.retrain_sample_threshold)
    assert view["new_samples"] == 0
    assert view["last_retrain_at"] == requested_at.isoformat()
    # and counting goes on from zero, the manual command applied once
    processing.handle_sample(
        forwarded_sample(event_id="e40"), 0, 40, states, {}, views, RULES, 202.0
    )
    assert processing.samples_view(states, "calling_score", 97)["new_samples"] == 1
    # the threshold then fires 97 samples after the manual retrain, not 97 after the first sample
    fired = [
        e
        for offset in range(41, 41 + 96)
        for e in processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 203.0
        )
    ]
    assert [orjson.loads(e.value)["new_samples"] for e in fired] == [97]


def _registered(command_id: str, version: str, weights: dict[str, float]) -> Any:
    from contracts.events import RegistryEventOccurred, RegistryEventType

    return RegistryEventOccurred(
        type=RegistryEventType.VERSION_REGISTERED,
        model_type="calling_score",
        version=version,
        status="production" if weights.get(version) == 1.0 else "staging",
        weights=weights,
        details={"command_id": command_id, "deployment_id": "d"},
    )


def test_crossings_are_absorbed_while_a_retrain_is_in_flight_through_a_restart() -> None:
    """One command; every later crossing is held (also across a changelog restore) until the
    registry answers that command; then one command carries all the samples counted since."""
    from streams.registry_view import apply_registry_event
    from streams.tables import MODEL_TYPES, ChangelogTable

    threshold = RULES.retrain_sample_threshold
    states = ChangelogTable.of(MODEL_TYPES)
    views: dict[str, Any] = {}

    def sample(offset: int, now: float) -> list[dict[str, Any]]:
        event = forwarded_sample(event_id=f"e{offset}")
        emitted = processing.handle_sample(event, 0, offset, states, {}, views, RULES, now)
        return [orjson.loads(e.value) for e in emitted if e.output is Output.RETRAIN]

    sent = [c for offset in range(5 * threshold) for c in sample(offset, 10.0)]
    assert [c["new_samples"] for c in sent] == [threshold]
    first = sent[0]["command_id"]
    view = processing.samples_view(states, "calling_score", threshold)
    assert view["retrain_in_flight"] == first and view["held_crossings"] == 4
    # a restart: the state comes back from its changelog, the retrain still in flight
    restored = ChangelogTable.of(MODEL_TYPES)
    for key, value in states.take_changed():
        restored.restore(key, value)
    states = restored
    assert sample(5 * threshold, 11.0) == []
    # a rejection for another command changes nothing; the registry's answer to this one does
    views["calling_score"] = apply_registry_event(None, _registered("other", "v1.0", {"v1.0": 1.0}))
    assert sample(5 * threshold + 1, 12.0) == []
    views["calling_score"] = apply_registry_event(None, _registered(first, "v1.0", {"v1.0": 1.0}))
    (second,) = sample(5 * threshold + 2, 13.0)
    assert second["new_samples"] == 4 * threshold + 3
    assert second["held_crossings"] == 3 and second["baseline_version"] == "v1.0"
    assert second["command_id"] != first
    assert sample(5 * threshold + 3, 14.0) == []


def test_a_candidate_registered_for_the_retrain_holds_the_next_until_decided() -> None:
    from streams.registry_view import apply_registry_event

    threshold = RULES.retrain_sample_threshold
    states: dict[str, Any] = {}
    views: dict[str, Any] = {}
    emitted = [
        e
        for offset in range(threshold)
        for e in processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 1.0
        )
    ]
    first = orjson.loads(emitted[0].value)["command_id"]
    production = apply_registry_event(None, _registered("c0", "v1.0", {"v1.0": 1.0}))
    views["calling_score"] = apply_registry_event(
        production, _registered(first, "v1.1", {"v1.0": 0.9, "v1.1": 0.1})
    )
    held = [
        e
        for offset in range(threshold, 3 * threshold)
        for e in processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 2.0
        )
        if e.output is Output.RETRAIN
    ]
    assert held == []  # answered, but its candidate is under test
    view = processing.samples_view(states, "calling_score", threshold)
    assert view["retrain_in_flight"] is None and view["held_crossings"] == 2


def test_the_schedule_waits_for_the_retrain_in_flight_and_the_timeout_bounds_it() -> None:
    threshold = RULES.retrain_sample_threshold
    states: dict[str, Any] = {}
    for offset in range(threshold + 5):
        processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, {}, RULES, 0.0
        )
    week = RULES.retrain_max_age_seconds
    short = dataclasses.replace(RULES, retrain_pending_timeout_seconds=week * 2)
    assert processing.handle_schedule("calling_score", states, {}, short, week + 1) == []
    # unanswered for longer than the timeout: no longer in flight, the schedule may fire
    fired = processing.handle_schedule("calling_score", states, {}, short, 2 * week + 1)
    assert [orjson.loads(e.value)["reason"] for e in fired] == ["schedule"]
    assert processing.handle_schedule("calling_score", states, {}, short, 2 * week + 2) == []


def test_a_candidate_no_test_runs_on_does_not_hold_the_threshold() -> None:
    """Production forced to 0 by an operator: no A/B test runs (nothing to compare it with), so
    nothing would ever decide the candidate; the crossing must still send its command, whose
    deployment replaces the forced candidate and gives production its traffic back."""
    from streams.registry_view import ModelTypeView

    forced = ModelTypeView(
        "calling_score",
        {"v1.0": "production", "v1.1": "staging"},
        {"v1.1": 1.0},
        changed_at=NOW - timedelta(hours=1),
    )
    states: dict[str, Any] = {}
    views = {"calling_score": forced}
    sent = [
        orjson.loads(e.value)
        for offset in range(RULES.retrain_sample_threshold)
        for e in processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 1.0
        )
        if e.output is Output.RETRAIN
    ]
    assert [c["new_samples"] for c in sent] == [RULES.retrain_sample_threshold]
    # a candidate under a running test still holds it
    states = {}
    views = {"calling_score": candidate_under_test()}
    held = [
        e
        for offset in range(RULES.retrain_sample_threshold)
        for e in processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 1.0
        )
        if e.output is Output.RETRAIN
    ]
    assert held == []


def test_crossings_held_for_a_retrain_go_when_it_is_answered_without_another_sample() -> None:
    """The samples stop while a retrain is in flight: its answer alone (seen by the periodic
    check) sends the held crossings' command, not a sample that may never come, nor the 7-day
    schedule."""
    from streams.registry_view import apply_registry_event

    threshold = RULES.retrain_sample_threshold
    states: dict[str, Any] = {}
    views: dict[str, Any] = {}
    sent = [
        orjson.loads(e.value)
        for offset in range(3 * threshold)
        for e in processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 10.0
        )
        if e.output is Output.RETRAIN
    ]
    (first,) = sent
    assert processing.handle_schedule("calling_score", states, views, RULES, 20.0) == []
    views["calling_score"] = apply_registry_event(
        None, _registered(first["command_id"], "v1.0", {"v1.0": 1.0})
    )
    fired = [
        orjson.loads(e.value)
        for e in processing.handle_schedule("calling_score", states, views, RULES, 30.0)
    ]
    assert [(c["reason"], c["new_samples"], c["held_crossings"]) for c in fired] == [
        ("sample_threshold", 2 * threshold, 1)
    ]
    assert processing.handle_schedule("calling_score", states, views, RULES, 40.0) == []
    # held by a candidate under test instead: the check does not send it either
    states = {}
    views = {"calling_score": candidate_under_test()}
    for offset in range(2 * threshold):
        processing.handle_sample(
            forwarded_sample(event_id=f"e{offset}"), 0, offset, states, {}, views, RULES, 10.0
        )
    assert processing.handle_schedule("calling_score", states, views, RULES, 30.0) == []


def test_loading_a_stored_state_copies_it_as_replace_would() -> None:
    """`ModelTypeState.load` copies by hand for speed; the copy is `dataclasses.replace`'s."""
    stored = processing.ModelTypeState(
        counter=rules.RetrainCounter(lineage="l", new_samples=7),
        missing_served_at=3,
        running=True,
        next_due=12.5,
        applied={"o0": 4},
        samples=9,
    )
    loaded = processing.ModelTypeState.load(stored)
    expected = dataclasses.replace(stored)
    assert loaded == expected and loaded.next_due == expected.next_due == 12.5
    assert loaded is not stored
    loaded.counter = rules.RetrainCounter(lineage="other")
    loaded.samples = 10
    assert stored.counter.lineage == "l" and stored.samples == 9


@pytest.mark.parametrize(
    ("occurred_at", "day"),
    [
        ("2026-11-26T23:30:00-05:00", "2026-11-27"),  # already the 27th in UTC
        ("2026-11-27T00:30:00+01:00", "2026-11-26"),  # still the 26th in UTC
        ("2026-11-26T10:00:00Z", "2026-11-26"),
    ],
)
def test_a_sample_counts_on_its_utc_day(occurred_at: str, day: str) -> None:
    sample = {
        "event_id": "e",
        "model_type": "calling_score",
        "model_version": "v1.0",
        "features": [0.1],
        "prediction": 0.5,
        "outcome_score": 0.5,
        "positive_outcome": True,
        "occurred_at": occurred_at,
    }
    assert processing.parse_sample(orjson.dumps(sample))["day"] == day
