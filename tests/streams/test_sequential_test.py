"""The mixture SPRT decision rule: edge cases, invariants, and a fast check by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.sequential_runs import AbScenario, path_statistics, run_pair
from streams.sequential_test import (
    POSITIVE_RATE,
    SQUARED_ERROR,
    ArmSummary,
    SequentialDecision,
    Verdict,
    decide,
    log_mixture_likelihood_ratio,
)

ALPHA = 0.05


def arm(samples: int, positives: int, mse: float = 0.04, spread: float = 0.02) -> ArmSummary:
    """An arm whose squared errors have mean `mse` and standard deviation about `spread`."""
    return ArmSummary(
        samples=samples,
        positives=positives,
        squared_error_sum=samples * mse,
        squared_error_sq_sum=samples * (mse * mse + spread * spread),
    )


def test_add_accumulates_counts_and_sums() -> None:
    summary = ArmSummary().add(True, 0.25).add(False, 0.5)
    assert summary == ArmSummary(2, 1, 0.75, 0.25**2 + 0.5**2)
    assert summary.positive_rate == 0.5
    assert summary.mean_squared_error == 0.375


def test_zero_samples_continue_with_no_evidence() -> None:
    decision = decide(ArmSummary(), ArmSummary(), ALPHA, min_samples=200)
    assert decision.verdict is Verdict.CONTINUE
    assert decision.difference == 0.0
    assert decision.statistic < decision.boundary
    assert decision.p_value == 1.0
    assert decision.ci_low <= 0.0 <= decision.ci_high


def test_zero_min_samples_is_treated_as_one() -> None:
    assert decide(ArmSummary(), ArmSummary(), ALPHA, min_samples=0).verdict is Verdict.CONTINUE


def test_identical_arms_continue() -> None:
    same = arm(50_000, 25_000)
    decision = decide(same, same, ALPHA, min_samples=200)
    assert decision.verdict is Verdict.CONTINUE
    assert decision.difference == 0.0
    assert decision.statistic < 0  # LR < 1: the data favour "no difference"
    assert decision.p_value == 1.0


def test_all_positives_in_both_arms_continue_without_dividing_by_zero() -> None:
    decision = decide(arm(1_000, 1_000), arm(1_000, 1_000), ALPHA, min_samples=200)
    assert decision.verdict is Verdict.CONTINUE
    assert math.isfinite(decision.statistic)


def test_all_positives_against_none_is_decisive() -> None:
    decision = decide(arm(500, 500), arm(500, 0), ALPHA, min_samples=200)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.metric == POSITIVE_RATE
    assert decision.difference == -1.0


def test_constant_identical_squared_errors_give_no_evidence() -> None:
    flat = ArmSummary(1_000, 500, 1_000 * 0.04, 1_000 * 0.04**2)
    decision = decide(flat, flat, ALPHA, min_samples=200)
    assert decision.verdict is Verdict.CONTINUE
    assert decision.squared_error_statistic == 0.0


def test_clearly_worse_rate_rolls_back_with_evidence() -> None:
    decision = decide(arm(20_000, 10_000), arm(3_000, 1_200), ALPHA, min_samples=200)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.metric == POSITIVE_RATE
    assert decision.statistic >= decision.boundary == pytest.approx(math.log(20))
    assert decision.p_value <= ALPHA
    assert decision.ci_high < 0 and decision.ci_low <= decision.difference <= decision.ci_high
    assert decision.difference == pytest.approx(0.4 - 0.5)


def test_clearly_better_rate_promotes() -> None:
    decision = decide(arm(20_000, 10_000), arm(3_000, 1_800), ALPHA, min_samples=200)
    assert decision.verdict is Verdict.PROMOTE
    assert decision.ci_low > 0


def test_worse_squared_error_rolls_back_even_with_equal_rates() -> None:
    decision = decide(arm(20_000, 10_000, mse=0.04), arm(2_000, 1_000, mse=0.09), ALPHA, 200)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.metric == SQUARED_ERROR
    assert decision.statistic == decision.squared_error_statistic >= decision.boundary


def test_better_rate_but_worse_squared_error_is_not_promoted() -> None:
    decision = decide(arm(20_000, 10_000, mse=0.04), arm(3_000, 1_800, mse=0.09), ALPHA, 200)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.metric == SQUARED_ERROR


def test_min_samples_holds_back_a_decision() -> None:
    production, candidate = arm(20_000, 10_000), arm(150, 0)
    assert decide(production, candidate, ALPHA, min_samples=200).verdict is Verdict.CONTINUE
    assert decide(production, candidate, ALPHA, min_samples=100).verdict is Verdict.ROLLBACK


def test_alpha_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError):
        decide(ArmSummary(), ArmSummary(), 0.0, 200)


def test_evidence_is_json_ready() -> None:
    import json

    evidence = decide(arm(20_000, 10_000), arm(3_000, 1_200), ALPHA, 200).evidence()
    assert json.loads(json.dumps(evidence))["verdict"] == "rollback"
    assert {"statistic", "boundary", "p_value", "ci_low", "ci_high", "difference"} <= set(evidence)


counts = st.integers(min_value=0, max_value=5_000)


@st.composite
def arms(draw: st.DrawFn) -> ArmSummary:
    samples = draw(counts)
    positives = draw(st.integers(min_value=0, max_value=samples))
    mse = draw(st.floats(min_value=0.0, max_value=1.0))
    spread = draw(st.floats(min_value=0.0, max_value=0.5))
    return arm(samples, positives, mse, spread)


@given(arms(), arms(), st.sampled_from([0.01, 0.05, 0.1]), st.integers(0, 500))
@settings(max_examples=300, deadline=None)
def test_decision_invariants(
    production: ArmSummary, candidate: ArmSummary, alpha: float, min_samples: int
) -> None:
    decision = decide(production, candidate, alpha, min_samples)
    assert isinstance(decision, SequentialDecision)
    assert math.isfinite(decision.statistic)
    assert 0.0 <= decision.p_value <= 1.0
    assert decision.p_value == pytest.approx(math.exp(-max(decision.statistic, 0.0)))
    assert -1.0 <= decision.ci_low <= decision.difference <= decision.ci_high <= 1.0
    if decision.verdict is not Verdict.CONTINUE:
        assert min(production.samples, candidate.samples) >= max(min_samples, 1)
        assert decision.statistic >= decision.boundary
        assert decision.p_value <= alpha * (1 + 1e-9)
    if decision.verdict is Verdict.PROMOTE:
        assert decision.difference > 0 and decision.ci_low > 0
    if decision.verdict is Verdict.ROLLBACK and decision.metric == POSITIVE_RATE:
        assert decision.difference < 0 and decision.ci_high < 0


@given(arms(), arms())
@settings(max_examples=200, deadline=None)
def test_swapping_arms_mirrors_the_rate_statistic(a: ArmSummary, b: ArmSummary) -> None:
    """Two-sided: the rate evidence does not depend on which arm is called the candidate."""
    forward, backward = decide(a, b, ALPHA, 0), decide(b, a, ALPHA, 0)
    assert forward.rate_statistic == pytest.approx(backward.rate_statistic, rel=1e-9, abs=1e-9)
    assert forward.difference == pytest.approx(-backward.difference)


@given(st.floats(0.0, 0.3), st.floats(1e-6, 1e-2))
def test_likelihood_ratio_grows_with_the_effect(difference: float, variance: float) -> None:
    smaller = log_mixture_likelihood_ratio(difference, variance, 0.05)
    larger = log_mixture_likelihood_ratio(difference + 0.01, variance, 0.05)
    assert larger > smaller


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_vectorized_statistics_match_decide(seed: int) -> None:
    """The simulation's numpy path computes what `decide` computes, look by look."""
    rng = np.random.default_rng(seed)
    n = 400
    is_candidate = rng.random(n) < 0.3
    positive = (rng.random(n) < np.where(is_candidate, 0.4, 0.5)).astype(np.float64)
    squared_error = (rng.standard_normal(n) * np.where(is_candidate, 0.3, 0.2)) ** 2
    stats = path_statistics(is_candidate, positive, squared_error)
    production, candidate = ArmSummary(), ArmSummary()
    for i in range(n):
        if is_candidate[i]:
            candidate = candidate.add(bool(positive[i]), float(squared_error[i]))
        else:
            production = production.add(bool(positive[i]), float(squared_error[i]))
        if i % 37 == 0 or i == n - 1:
            decision = decide(production, candidate, ALPHA, 0)
            assert stats.rate_log_lr[i] == pytest.approx(decision.rate_statistic, abs=1e-9)
            assert stats.error_log_lr[i] == pytest.approx(
                decision.squared_error_statistic, rel=1e-6, abs=1e-9
            )


# The simulation checks below look at the test after EVERY event (the way streams/ does).


def test_simulated_aa_false_rollback_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(20261126)
    scenario = AbScenario(
        production_rate=0.5, candidate_rate=0.5, weight=0.1, candidate_horizon=2_000
    )
    runs = 300
    outcomes = [run_pair(rng, scenario, ALPHA, min_samples=200) for _ in range(runs)]
    msprt_rollbacks = sum(o[0].verdict is Verdict.ROLLBACK for o in outcomes)
    naive_rollbacks = sum(o[1].verdict is Verdict.ROLLBACK for o in outcomes)
    assert msprt_rollbacks / runs <= ALPHA
    # The same streams fool a z-test looked at after every event far more often.
    assert naive_rollbacks > 2 * msprt_rollbacks


def test_simulated_power_five_points_at_weight_point_one() -> None:
    rng = np.random.default_rng(7)
    scenario = AbScenario(
        production_rate=0.5, candidate_rate=0.45, weight=0.1, candidate_horizon=5_000
    )
    runs = 100
    outcomes = [run_pair(rng, scenario, ALPHA, min_samples=200)[0] for _ in range(runs)]
    rolled_back = [o for o in outcomes if o.verdict is Verdict.ROLLBACK]
    assert len(rolled_back) >= 0.9 * runs
    assert all(o.candidate_samples <= 5_000 for o in rolled_back)


def test_real_decide_looked_at_in_batches_rolls_back_a_bad_candidate() -> None:
    """The pure function itself, fed event by event, looked at every 10 events."""
    rng = np.random.default_rng(11)
    decided = 0
    for _ in range(10):
        production, candidate = ArmSummary(), ArmSummary()
        for event in range(50_000):
            on_candidate = rng.random() < 0.1
            rate = 0.45 if on_candidate else 0.5
            squared_error = float(rng.standard_normal() * 0.2) ** 2
            positive = bool(rng.random() < rate)
            if on_candidate:
                candidate = candidate.add(positive, squared_error)
            else:
                production = production.add(positive, squared_error)
            if event % 10 == 9 and decide(production, candidate, ALPHA, 200).verdict is not (
                Verdict.CONTINUE
            ):
                decided += decide(production, candidate, ALPHA, 200).verdict is Verdict.ROLLBACK
                break
    assert decided >= 9


def test_normal_quantile_of_the_naive_comparison() -> None:
    from simulator.sequential_runs import normal_quantile

    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile(0.01) == pytest.approx(-2.326348, abs=1e-6)
    assert normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
