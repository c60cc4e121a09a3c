"""The whole-candidate decision (streams/experiment.py) against flaws 1-5 of issue 14 in the old rule.

Each flaw test feeds the SAME events, in arrival order, to the old rule (streams/abtest.py with
streams/sequential_test.py, as the worker used them) and to the new one, and shows the old rule
deciding wrongly where the new one does not.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from streams.experiment import (
    DecisionPlan,
    ExperimentState,
    Verdict,
    advance,
    observe,
    start,
    start_step,
)
from streams.group_sequential import BucketSums, compare, wang_tsiatis_boundaries
from streams.sequential_test import ArmSummary, decide
from streams.sequential_test import Verdict as OldVerdict

HOUR = 3600.0
T0 = datetime(2026, 11, 26, tzinfo=UTC)
PROD, CAND = "v1.0", "v1.1"


@dataclass(frozen=True)
class Outcome:
    served: float  # seconds after the candidate started
    occurred: float
    subject: str
    version: str
    positive: bool
    squared_error: float


def world(
    *,
    seed: int,
    hours: float,
    per_hour: float,
    rate: tuple[float, float],  # production, candidate
    window: float,
    fast_positives: bool = False,
    subjects: int = 100_000,
    subject_rates: dict[str, float] | None = None,
    squared_error: tuple[float, float] = (0.04, 0.04),
    error_noise: float = 0.02,
    weight: float = 0.1,
) -> list[Outcome]:
    """Outcomes in arrival order; production served alone for one window before the start."""
    rng = random.Random(seed)
    split = {}
    events = []
    t = -window
    while t < hours * HOUR:
        t += rng.expovariate(per_hour / HOUR)
        subject = f"s{rng.randrange(subjects)}"
        split.setdefault(subject, rng.random())
        on_candidate = t >= 0 and split[subject] < weight
        p = rate[1] if on_candidate else rate[0]
        if subject_rates is not None:
            p += subject_rates[subject] - 0.5
        positive = rng.random() < p
        delay = 0.0
        if fast_positives:
            delay = min(rng.expovariate(1 / (2 * HOUR)), window) if positive else window
        mean_error = squared_error[1] if on_candidate else squared_error[0]
        error = max(mean_error + rng.gauss(0, error_noise), 0.0)
        version = CAND if on_candidate else PROD
        events.append(Outcome(t, t + delay, subject, version, positive, error))
    return sorted(events, key=lambda e: e.occurred)


@dataclass(frozen=True)
class OldResult:
    decided: str | None
    last: dict | None


def old_rule(events: list[Outcome]) -> OldResult:
    """The old worker's A/B path (arms counted from the experiment's start in arrival order,
    `sequential_test.decide` after every event), until its first decision."""
    arms = {PROD: ArmSummary(), CAND: ArmSummary()}
    last = None
    for e in events:
        if e.occurred < 0.0:
            continue  # occurred before the experiment began: the old rule did not count it
        arms[e.version] = arms[e.version].add(e.positive, e.squared_error)
        decision = decide(arms[PROD], arms[CAND], 0.05, 200)
        last = decision.evidence()
        if decision.verdict is not OldVerdict.CONTINUE:
            return OldResult(decision.verdict.value, last)
    return OldResult(None, last)


def new_rule(events: list[Outcome], plan: DecisionPlan) -> tuple[ExperimentState, list[Verdict]]:
    state = start("exp-1", PROD, CAND, 0.1, 0.0, plan)
    decisions = []
    for e in events:
        observe(
            state,
            plan,
            version=e.version,
            subject_id=e.subject,
            served_at=e.served,
            occurred_at=e.occurred,
            positive=e.positive,
            squared_error=e.squared_error,
        )
        decision = advance(state, plan)
        if decision is not None:
            decisions.append(decision.verdict)
            if decision.verdict is not Verdict.PROMOTE or decision.weight >= 1.0:
                break
            start_step(state, decision.weight, e.occurred, plan)
    return state, decisions


def test_flaw_1_delayed_outcomes_aa_old_promotes_new_does_not() -> None:
    # Positives within hours, negatives when the 24 h window closes: the old rule counts the
    # candidate's fast positives against production's backlog of negatives.
    events = world(
        seed=1, hours=40, per_hour=1000, rate=(0.5, 0.5), window=86_400, fast_positives=True
    )
    assert old_rule(events).decided == OldVerdict.PROMOTE.value
    plan = DecisionPlan(first_look=200, max_candidate_outcomes=6_400)
    state, decisions = new_rule(events, plan)
    assert decisions == []
    assert state.matured()[0] >= 400  # it did look (twice) on matured cohorts
    assert state.waiting > 0  # and held back what had not matured


def test_flaw_2_subjects_old_reads_a_subject_mix_offset_as_an_effect_new_does_not() -> None:
    # 300 subjects who return all the time and differ (sd 0.13): the candidate's 10% of them
    # happen to have a lower rate; the models are identical.
    rng = random.Random(7)
    rates = {f"s{i}": min(max(0.5 + rng.gauss(0, 0.13), 0.0), 1.0) for i in range(300)}
    events = world(
        seed=21, hours=60, per_hour=1000, rate=(0.5, 0.5), window=60, subjects=300,
        subject_rates=rates,
    )  # fmt: skip
    candidates = {e.subject for e in events if e.version == CAND}
    offset = sum(rates[s] for s in candidates) / len(candidates) - sum(rates.values()) / 300
    assert offset < -0.02  # a fixed offset of the subject mix, not of the model
    assert old_rule(events).decided == OldVerdict.ROLLBACK.value
    plan = DecisionPlan(first_look=400, max_candidate_outcomes=6_400, outcome_window_seconds=60)
    state, decisions = new_rule(events, plan)
    assert Verdict.ROLLBACK not in decisions
    assert state.verdict is Verdict.KEEP_PRODUCTION


def test_flaw_3_every_candidate_ends_within_the_maximum() -> None:
    events = world(seed=3, hours=80, per_hour=300, rate=(0.5, 0.5), window=60)
    assert old_rule(events).decided is None  # still serving 10% after 80 hours, and forever
    plan = DecisionPlan(
        first_look=200, max_candidate_outcomes=100_000, max_duration_seconds=48 * HOUR,
        outcome_window_seconds=60,
    )  # fmt: skip
    state, decisions = new_rule(events, plan)
    assert decisions == [Verdict.KEEP_PRODUCTION]
    assert state.last is not None and state.last["verdict"] == "keep_production"
    assert state.watermark(plan) < 48 * HOUR + 3600  # ended at the maximum, not later


def test_flaw_4_guardrail_is_non_inferiority_not_a_race() -> None:
    # 3 points better, squared error 10% worse (inside the 15% margin).
    events = world(
        seed=4, hours=200, per_hour=1000, rate=(0.5, 0.53), window=60,
        squared_error=(0.04, 0.044), error_noise=0.004,
    )  # fmt: skip
    old = old_rule(events)
    assert old.decided == OldVerdict.ROLLBACK.value
    assert old.last is not None and old.last["metric"] == "squared_error"
    plan = DecisionPlan(outcome_window_seconds=60)
    _, decisions = new_rule(events, plan)
    assert Verdict.ROLLBACK not in decisions
    assert decisions[0] is Verdict.PROMOTE


def test_flaw_5_pooled_variance_at_a_rare_rate() -> None:
    # 2% base rate; the candidate's first 400 outcomes happen to hold no positive.
    production = ArmSummary(samples=3_600, positives=72)
    candidate = ArmSummary(samples=400, positives=0)
    assert decide(production, candidate, 0.05, 200).verdict is OldVerdict.ROLLBACK
    plan = DecisionPlan()
    b = plan.buckets
    spread = [1.0 if i < 8 else 0.0 for i in range(b)]
    prod = BucketSums(tuple([3_600 / b] * b), tuple(72 / 8 * s for s in spread), tuple([0.0] * b))
    cand = BucketSums(tuple([400 / b] * b), tuple([0.0] * b), tuple([0.0] * b))
    z = compare([(cand, prod)], "rate").z
    assert -plan.boundary("rollback", 0) < z < 0


def test_served_at_decides_the_cohort_and_late_outcomes_stay_out() -> None:
    plan = DecisionPlan(outcome_window_seconds=HOUR, slots_per_window=4)
    state = start("exp-2", PROD, CAND, 0.1, 0.0, plan)
    start_step(state, 0.5, 10 * HOUR, plan)
    kwargs = {"positive": True, "squared_error": 0.1}
    # Served under 0.1, arriving after the switch to 0.5: belongs to the 0.1 cohort.
    observe(state, plan, version=CAND, subject_id="a", served_at=9.9 * HOUR,
            occurred_at=10.5 * HOUR, **kwargs)  # fmt: skip
    observe(state, plan, version=CAND, subject_id="b", served_at=10.1 * HOUR,
            occurred_at=10.2 * HOUR, **kwargs)  # fmt: skip
    assert state.waiting == 2 and state.matured() == (0, 0)
    observe(state, plan, version=PROD, subject_id="c", served_at=13 * HOUR,
            occurred_at=13 * HOUR, **kwargs)  # fmt: skip
    advance(state, plan)
    assert [s.candidate.outcomes for s in state.steps] == [1, 1]
    assert state.waiting == 1  # production's outcome served at 13 h has not matured
    # Served at 9.9 h again, but its slot has matured: late, never counted.
    observe(state, plan, version=CAND, subject_id="d", served_at=9.9 * HOUR,
            occurred_at=13.1 * HOUR, **kwargs)  # fmt: skip
    assert state.late == 1 and state.steps[0].candidate.outcomes == 1
    observe(state, plan, version=CAND, subject_id="e", served_at=-5.0,
            occurred_at=13.1 * HOUR, **kwargs)  # fmt: skip
    assert state.before_start == 1


def test_a_replay_through_the_serialized_state_decides_as_the_first_run() -> None:
    events = world(seed=5, hours=60, per_hour=800, rate=(0.5, 0.45), window=HOUR,
                   fast_positives=True)  # fmt: skip
    plan = DecisionPlan(outcome_window_seconds=HOUR, first_look=200)
    first, decisions = new_rule(events, plan)
    assert decisions == [Verdict.ROLLBACK]
    # Again, stopping half way into JSON (as the changelogged table does) and back.
    state = start("exp-1", PROD, CAND, 0.1, 0.0, plan)
    replayed = None
    for i, e in enumerate(events):
        if i == len(events) // 3:
            state = ExperimentState.from_dict(json.loads(json.dumps(state.to_dict())))
        observe(state, plan, version=e.version, subject_id=e.subject, served_at=e.served,
                occurred_at=e.occurred, positive=e.positive, squared_error=e.squared_error)  # fmt: skip
        replayed = advance(state, plan)
        if replayed is not None:
            break
    assert replayed is not None and replayed.verdict is Verdict.ROLLBACK
    assert replayed.evidence == first.last


def test_subjects_with_many_events_widen_the_variance() -> None:
    b = 64
    # The same totals, spread evenly over subjects or concentrated in a few buckets' subjects.
    even = BucketSums(tuple([100.0] * b), tuple([50.0] * b), tuple([0.0] * b))
    clumped_y = tuple(100.0 if i % 2 else 0.0 for i in range(b))
    clumped = BucketSums(tuple([100.0] * b), clumped_y, tuple([0.0] * b))
    shifted = BucketSums(tuple([10.0] * b), tuple([4.5] * b), tuple([0.0] * b))
    assert abs(compare([(shifted, clumped)], "rate").z) < abs(compare([(shifted, even)], "rate").z)


@pytest.mark.parametrize(
    ("fractions", "alpha", "delta", "expected"),
    [
        ((0.2, 0.4, 0.6, 0.8, 1.0), 0.025, 0.5, 2.413),  # Pocock, K = 5
        ((0.2, 0.4, 0.6, 0.8, 1.0), 0.025, 0.0, 2.040),  # O'Brien-Fleming, K = 5, last look
        ((1.0,), 0.025, 0.5, 1.960),
    ],
)
def test_group_sequential_boundaries_match_published_constants(
    fractions: tuple[float, ...], alpha: float, delta: float, expected: float
) -> None:
    assert wang_tsiatis_boundaries(fractions, alpha, delta)[-1] == pytest.approx(expected, abs=2e-3)


def _even(outcomes: int, positives: int, buckets: int = 64) -> BucketSums:
    return BucketSums(
        tuple([outcomes / buckets] * buckets),
        tuple([positives / buckets] * buckets),
        tuple([0.04 * outcomes / buckets] * buckets),
        0.0016 * outcomes,
    )


def test_flaw_1_steps_are_cohorts_so_a_daily_cycle_cannot_make_simpsons_paradox() -> None:
    # Equal arms within each step; the 0.1 step ran at night (30%), the 0.5 step by day (70%).
    night = (_even(1_000, 300), _even(9_000, 2_700))
    day = (_even(5_000, 3_500), _even(5_000, 3_500))
    pooled_candidate = ArmSummary(samples=6_000, positives=3_800)
    pooled_production = ArmSummary(samples=14_000, positives=6_200)
    assert decide(pooled_production, pooled_candidate, 0.05, 200).verdict is OldVerdict.PROMOTE
    rate = compare([night, day], "rate")
    assert rate.difference == pytest.approx(0.0, abs=1e-12)
    assert rate.z == pytest.approx(0.0, abs=1e-9)


def test_the_experiment_follows_the_registry_view() -> None:
    from streams.experiment import follow

    plan = DecisionPlan()
    assert follow(None, PROD, None, 0.0, 0.0, plan) is None
    state = follow(None, PROD, CAND, 0.1, 100.0, plan)
    assert state is not None and state.experiment_id == "v1.0,v1.1" and state.started_at == 100.0
    state.requested_weight = 0.5
    assert follow(state, PROD, CAND, 0.5, 200.0, plan) is state
    assert [(s.weight, s.started_at) for s in state.steps] == [(0.1, 100.0), (0.5, 200.0)]
    assert state.requested_weight is None
    assert follow(state, PROD, CAND, 0.5, 300.0, plan) is state and len(state.steps) == 2
    state.verdict = Verdict.ROLLBACK
    assert follow(state, PROD, None, 0.0, 400.0, plan) is state  # the ended one stays readable
    fresh = follow(state, PROD, "v1.2", 0.1, 500.0, plan)
    assert fresh is not None and fresh is not state and fresh.experiment_id == "v1.0,v1.2"


def _errors(outcomes: int, mean: float, spread: float, buckets: int = 64) -> BucketSums:
    # Squared errors spread over buckets around `mean` (some buckets' subjects err more).
    e = [mean * outcomes / buckets * (1 + spread * ((i % 5) - 2) / 2) for i in range(buckets)]
    return BucketSums(tuple([outcomes / buckets] * buckets), tuple([0.0] * buckets), tuple(e),
                      sum(x * x for x in e) / (outcomes / buckets) * 1.5)  # fmt: skip


def test_the_squared_error_guardrail_is_a_log_ratio_test_against_the_margin() -> None:
    production = _errors(4_050, 0.2, 0.3)
    plan = DecisionPlan()
    at_margin = compare([(_errors(450, 0.23, 0.3), production)], "log_squared_error", 0.15)
    inside = compare([(_errors(450, 0.22, 0.3), production)], "log_squared_error", 0.15)
    worse = compare([(_errors(450, 0.4, 0.3), production)], "log_squared_error", 0.15)
    assert at_margin.z == pytest.approx(0.0, abs=1e-9)
    assert at_margin.difference == pytest.approx(0.0, abs=1e-12)
    assert inside.difference == pytest.approx(math.log(1.10 / 1.15))
    assert -plan.boundary("non_inferiority", 0) < inside.z < 0  # not shown within, not worse
    assert worse.z > plan.boundary("guardrail", 0)  # twice the error: rolled back at look 1
    # On the log scale the two arms' roles are symmetric: swapping them only flips the sign.
    same_n = _errors(4_050, 0.3, 0.3)
    forward = compare([(same_n, production)], "log_squared_error").z
    backward = compare([(production, same_n)], "log_squared_error").z
    assert forward == pytest.approx(-backward)
