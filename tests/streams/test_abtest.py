"""The worker's A/B path (streams/processing.py over streams/abtest.py and streams/experiment.py):
forwarded samples in, registry commands out, exactly once, through crashes.

Regression tests of issue 14: the old rule (arrival order, no served_at) promoted an A/A
candidate whose positives are reported fast and negatives at the window's end, and counted
outcomes without served_at.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import processing
from streams.experiment import DecisionPlan
from streams.processing import Output, StreamRules
from streams.registry_view import ModelTypeView

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = 3600.0
PROD, CAND = "v1.0", "v1.1"
MT = "calling_score"
RULES = StreamRules(
    retrain_sample_threshold=10**9,
    retrain_max_age_seconds=10**9,
    decision_plan=DecisionPlan(first_look=200, max_candidate_outcomes=3200),
    outcome_windows={MT: WINDOW},
)


def view(candidate_weight: float, at: datetime = START) -> ModelTypeView:
    return ModelTypeView(
        MT,
        {PROD: "production", CAND: "staging"},
        {PROD: round(1.0 - candidate_weight, 6), CAND: candidate_weight},
        changed_at=at,
    )


def split(subject: str) -> float:
    digest = hashlib.blake2b(subject.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def events(
    *,
    seed: int,
    count: int,
    rates: tuple[float, float],  # production, candidate
    weight: float = 0.1,
    fast_positives: bool = False,
    served_at: bool = True,
    per_second: float = 5.0,
    start: float = 0.0,
) -> list[dict[str, Any]]:
    """Forwarded samples in arrival (occurred_at) order, served from `start` seconds on."""
    rng = random.Random(seed)
    out = []
    t = start
    for i in range(count):
        t += rng.expovariate(per_second)
        subject = f"s{rng.randrange(50_000)}"
        version = CAND if split(subject) < weight else PROD
        positive = rng.random() < rates[version == CAND]
        delay = rng.uniform(0, 120) if positive or not fast_positives else WINDOW
        served = START + timedelta(seconds=t)
        sample = {
            "event_id": f"e{seed}-{i}",
            "model_type": MT,
            "model_version": version,
            "subject_id": subject,
            "features": [0.0] * 23,
            "prediction": 0.5,
            "outcome_score": float(positive),
            "positive_outcome": positive,
            "occurred_at": (served + timedelta(seconds=delay if fast_positives else 0)).isoformat(),
        }
        if served_at:
            sample["served_at"] = served.isoformat()
        out.append(sample)
    out.sort(key=lambda s: s["occurred_at"])
    return out


def run(
    samples: list[dict[str, Any]],
    views: dict[str, ModelTypeView],
    states: dict[str, Any],
    first_offset: int = 0,
    rules: StreamRules = RULES,
) -> list[dict[str, Any]]:
    commands = []
    for offset, sample in enumerate(samples, start=first_offset):
        for emitted in processing.handle_sample(
            orjson.dumps(sample), 0, offset, states, {}, views, rules, 0.0
        ):
            assert emitted.output == Output.REGISTRY
            commands.append(orjson.loads(emitted.value))
    return commands


def test_an_aa_candidate_with_fast_positives_and_slow_negatives_is_not_promoted() -> None:
    """The old rule promoted this candidate in every run: its first outcomes were the fast
    positives, production's included the backlog's negatives. Counted by served_at and only
    once matured, both arms are whole."""
    states: dict[str, Any] = {}
    samples = events(seed=7, count=40_000, rates=(0.5, 0.5), fast_positives=True)
    commands = run(samples, {MT: view(0.1)}, states)
    assert [c["type"] for c in commands if c["type"] == "promote"] == []
    shown = processing.abtest_view(states, MT)
    assert shown["candidate"]["matured"] >= 3000 and shown["baseline"]["matured"] > 20_000
    assert shown["candidate"]["positive_outcome_rate"] == pytest.approx(0.5, abs=0.05)
    assert shown["late"] == 0 and shown["missing_served_at"] == 0


def test_outcomes_without_served_at_are_left_out_and_counted() -> None:
    states: dict[str, Any] = {}
    performance: dict[str, Any] = {}
    samples = events(seed=3, count=3000, rates=(0.5, 0.1), served_at=False)
    for offset, sample in enumerate(samples):
        emitted = processing.handle_sample(
            orjson.dumps(sample), 0, offset, states, performance, {MT: view(0.1)}, RULES, 0.0
        )
        assert emitted == []  # a far worse candidate, but no outcome is in the test
    shown = processing.abtest_view(states, MT)
    assert shown["missing_served_at"] == 3000
    assert shown["candidate"]["samples"] == 0 and shown["baseline"]["samples"] == 0
    assert shown["running"] is True and shown["decision"] == "continue"
    # ...still counted and kept in daily performance
    assert processing.ModelTypeState.load(states[MT]).samples == 3000
    assert processing.performance_samples(performance, MT) == 3000


def test_a_worse_candidate_is_rolled_back_once_with_its_evidence() -> None:
    states: dict[str, Any] = {}
    commands = run(events(seed=1, count=30_000, rates=(0.5, 0.3)), {MT: view(0.1)}, states)
    assert len(commands) == 1
    rollback = commands[0]
    assert rollback["type"] == "rollback" and rollback["version"] == CAND
    evidence = rollback["evidence"]
    assert evidence["verdict"] == "rollback" and evidence["rate_z"] < 0
    assert evidence["rate_z"] <= -evidence["boundaries"]["rollback"]
    plan = DecisionPlan()
    assert evidence["matured_candidate"] >= 200
    assert evidence["false_rollback_bound"] == pytest.approx(
        plan.alpha_rollback + plan.alpha_guardrail
    )
    shown = processing.abtest_view(states, MT)
    assert shown["decision"] == "rollback" and shown["running"] is False
    assert shown["statistics"] == evidence


def test_a_better_candidate_ramps_step_by_step_to_production() -> None:
    states: dict[str, Any] = {}
    first = run(events(seed=2, count=30_000, rates=(0.4, 0.7)), {MT: view(0.1)}, states)
    assert [(c["type"], c["weights"]) for c in first] == [
        ("promote", {CAND: 0.5, PROD: 0.5}),
    ]
    shown = processing.abtest_view(states, MT)
    assert shown["step"] == 0.1 and shown["decision"] == "promote to 0.5 requested"
    # The registry applies the step: outcomes served from then on are the 0.5 cohort.
    applied_at = START + timedelta(hours=3)
    later = events(
        seed=4,
        count=30_000,
        rates=(0.4, 0.7),
        weight=0.5,
        start=(applied_at - START).total_seconds() + 7200,
    )
    second = run(later, {MT: view(0.5, applied_at)}, states, first_offset=100_000)
    assert [(c["type"], c["weights"]) for c in second] == [
        ("promote", {CAND: 1.0, PROD: 0.0}),
    ]
    assert second[0]["evidence"]["step_weight"] == 0.5
    assert processing.abtest_view(states, MT)["steps"][1]["weight"] == 0.5


def test_a_candidate_without_a_difference_ends_with_keep_production() -> None:
    states: dict[str, Any] = {}
    commands = run(events(seed=5, count=60_000, rates=(0.5, 0.5)), {MT: view(0.1)}, states)
    assert [c["type"] for c in commands] == ["keep_production"]
    assert commands[0]["version"] == CAND
    assert commands[0]["evidence"]["matured_candidate"] >= 3200
    assert processing.abtest_view(states, MT)["remaining"]["candidate_outcomes"] == 0


def _crashing_run(samples: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """As `run`, with crashes: each table key reverts to its last committed value or keeps its
    newest, processing resumes at the committed offset, unacknowledged sends are lost."""
    rng = random.Random(seed)
    states: dict[str, Any] = {}
    committed_states: dict[str, Any] = {}
    committed, sent, sent_committed = 0, [], 0
    position = 0
    crashes = sorted(rng.sample(range(1, len(samples)), 5))
    views = {MT: view(0.1)}
    while position < len(samples):
        for emitted in processing.handle_sample(
            orjson.dumps(samples[position]), 0, position, states, {}, views, RULES, 0.0
        ):
            sent.append(orjson.loads(emitted.value))
        position += 1
        if rng.random() < 0.01:
            committed, committed_states, sent_committed = position, copy.deepcopy(states), len(sent)
        if crashes and position >= crashes[0]:
            crashes.pop(0)
            if rng.random() < 0.5:  # the changelog write of the state was lost
                states = copy.deepcopy(committed_states)
            else:  # the newest state was written, as a changelog record
                states = {k: orjson.loads(orjson.dumps(v.to_dict())) for k, v in states.items()}  # noqa: E501
            del sent[rng.randint(sent_committed, len(sent)) :]
            position = committed
    return sent


@pytest.mark.parametrize("seed", [11, 12])
def test_the_decision_is_one_command_through_crashes(seed: int) -> None:
    samples = events(seed=1, count=30_000, rates=(0.5, 0.3))
    clean = run(samples, {MT: view(0.1)}, {})
    sent = _crashing_run(samples, seed)
    assert len(clean) == 1 and sent
    # re-sent on replay, never a different decision: one command id, the same evidence
    assert {c["command_id"] for c in sent} == {clean[0]["command_id"]}
    assert all(c == clean[0] for c in sent)


def test_a_replayed_sample_emits_its_decision_again_with_the_same_id() -> None:
    states: dict[str, Any] = {}
    samples = events(seed=1, count=30_000, rates=(0.5, 0.3))
    commands: list[tuple[int, dict[str, Any]]] = []
    for offset, sample in enumerate(samples):
        for emitted in processing.handle_sample(
            orjson.dumps(sample), 0, offset, states, {}, {MT: view(0.1)}, RULES, 0.0
        ):
            commands.append((offset, orjson.loads(emitted.value)))
    [(offset, command)] = commands
    again = processing.handle_sample(
        orjson.dumps(samples[offset]), 0, offset, states, {}, {MT: view(0.1)}, RULES, 0.0
    )
    assert [orjson.loads(e.value) for e in again] == [command]


def test_the_model_types_window_and_the_settings_plan_decide() -> None:
    rules = dataclasses.replace(RULES, outcome_windows={MT: 60.0})
    assert rules.plan_for(MT).outcome_window_seconds == 60.0
    assert rules.plan_for(MT).first_look == 200
    assert rules.plan_for("outcome_prediction").outcome_window_seconds == 86_400.0
    assert StreamRules(1, 1.0).plan_for(MT) == DecisionPlan()  # the documented default


def test_the_shared_contracts_rollback_alpha_setting_reaches_the_workers_plan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from streams.settings import StreamsSettings
    from streams.worker import Worker

    assert StreamsSettings().rollback_alpha == 0.01
    monkeypatch.setenv("RELEARN_ROLLBACK_ALPHA", "0.02")
    monkeypatch.setenv("RELEARN_STATE_DIR", str(tmp_path))
    assert Worker(StreamsSettings()).rules.decision_plan.alpha_rollback == 0.02
