"""Monte-Carlo runs of the A/B decision rule (streams/sequential_test.py) without Kafka.

One run draws a stream of outcome events, assigns each to the candidate with probability
`weight`, and looks at the test after EVERY event (the way streams/ looks at it), stopping at
the first ROLLBACK or PROMOTE. The statistics are computed for all looks at once with numpy,
with exactly the formulas of `decide` (a unit test checks they agree with it); the same data
also drive a naive fixed-horizon z-test looked at after every event, for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streams.sequential_test import (
    RATE_MIXING_SD,
    SQUARED_ERROR_MIXING_SD,
    VARIANCE_FLOOR,
    Verdict,
)


def normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    low = 0.02425
    if p < low:
        q = math.sqrt(-2 * math.log(p))
        num = ((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]
        return num / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - low:
        return -normal_quantile(1 - p)
    q = p - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    return num / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


@dataclass(frozen=True)
class AbScenario:
    """The truth of one simulated A/B test."""

    production_rate: float = 0.5
    candidate_rate: float = 0.5
    weight: float = 0.1  # the candidate's share of traffic
    candidate_horizon: int = 5_000  # stop watching after this many candidate samples
    production_error_sd: float = 0.2  # squared error = (N(0, sd))^2 per event
    candidate_error_sd: float = 0.2


@dataclass(frozen=True)
class RunOutcome:
    """What one run decided, and after how many candidate samples (the horizon if none)."""

    verdict: Verdict
    metric: str
    candidate_samples: int
    events: int


@dataclass(frozen=True)
class PathStatistics:
    """Per-look arrays for one run: arm sizes and both tests' statistics, look i = after event i."""

    candidate_n: np.ndarray
    production_n: np.ndarray
    rate_difference: np.ndarray
    rate_log_lr: np.ndarray
    rate_z: np.ndarray
    error_difference: np.ndarray
    error_log_lr: np.ndarray
    error_z: np.ndarray


def _log_lr(difference: np.ndarray, variance: np.ndarray, mixing_sd: np.ndarray | float):
    s2 = np.maximum(variance, VARIANCE_FLOOR)
    t2 = np.asarray(mixing_sd) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 0.5 * np.log(s2 / (s2 + t2)) + t2 * difference**2 / (2.0 * s2 * (s2 + t2))
    return np.where(t2 > 0, value, 0.0)


def path_statistics(
    is_candidate: np.ndarray,
    positive: np.ndarray,
    squared_error: np.ndarray,
    rate_mixing_sd: float = RATE_MIXING_SD,
) -> PathStatistics:
    """The statistics `decide` would compute after each event of this stream."""
    cand = is_candidate.astype(np.float64)
    prod = 1.0 - cand
    nc = np.cumsum(cand)
    npr = np.cumsum(prod)
    xc = np.cumsum(positive * cand)
    xp = np.cumsum(positive * prod)
    sc = np.cumsum(squared_error * cand)
    sp = np.cumsum(squared_error * prod)
    qc = np.cumsum(squared_error**2 * cand)
    qp = np.cumsum(squared_error**2 * prod)

    with np.errstate(divide="ignore", invalid="ignore"):
        rate_c = np.where(nc > 0, xc / np.maximum(nc, 1), 0.0)
        rate_p = np.where(npr > 0, xp / np.maximum(npr, 1), 0.0)
        pc = (xc + 0.5) / (nc + 1)
        pp = (xp + 0.5) / (npr + 1)
        rate_var = pp * (1 - pp) / np.maximum(npr, 1) + pc * (1 - pc) / np.maximum(nc, 1)
        rate_diff = rate_c - rate_p
        rate_llr = _log_lr(rate_diff, rate_var, rate_mixing_sd)
        rate_z = rate_diff / np.sqrt(np.maximum(rate_var, VARIANCE_FLOOR))

        mean_c = np.where(nc > 0, sc / np.maximum(nc, 1), 0.0)
        mean_p = np.where(npr > 0, sp / np.maximum(npr, 1), 0.0)
        var_c = np.where(nc >= 2, np.maximum(qc - nc * mean_c**2, 0.0) / np.maximum(nc - 1, 1), 0.0)
        var_p = np.where(
            npr >= 2, np.maximum(qp - npr * mean_p**2, 0.0) / np.maximum(npr - 1, 1), 0.0
        )
        error_diff = mean_c - mean_p
        error_var = var_p / np.maximum(npr, 1) + var_c / np.maximum(nc, 1)
        pooled_sd = np.sqrt((var_c + var_p) / 2.0)
        both = (nc >= 2) & (npr >= 2) & (pooled_sd > 0)
        error_llr = np.where(
            both, _log_lr(error_diff, error_var, SQUARED_ERROR_MIXING_SD * pooled_sd), 0.0
        )
        error_z = np.where(both, error_diff / np.sqrt(np.maximum(error_var, VARIANCE_FLOOR)), 0.0)
    return PathStatistics(nc, npr, rate_diff, rate_llr, rate_z, error_diff, error_llr, error_z)


def draw_stream(
    rng: np.random.Generator, scenario: AbScenario
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events up to the candidate horizon: arm flags, positive outcomes, squared errors."""
    # Enough events that the candidate reaches its horizon (weight * n, plus slack), then cut.
    total = int(scenario.candidate_horizon / scenario.weight * 1.2) + 200
    is_candidate = rng.random(total) < scenario.weight
    cut = np.searchsorted(np.cumsum(is_candidate), scenario.candidate_horizon) + 1
    is_candidate = is_candidate[:cut]
    n = is_candidate.size
    rate = np.where(is_candidate, scenario.candidate_rate, scenario.production_rate)
    positive = (rng.random(n) < rate).astype(np.float64)
    sd = np.where(is_candidate, scenario.candidate_error_sd, scenario.production_error_sd)
    squared_error = (rng.standard_normal(n) * sd) ** 2
    return is_candidate, positive, squared_error


def first_decision(
    stats: PathStatistics,
    crossed_rate: np.ndarray,
    crossed_error: np.ndarray,
    min_samples: int,
    check_every: int = 1,
) -> RunOutcome:
    """The first look (every `check_every` events) at which the rule of `decide` stops."""
    enough = np.minimum(stats.candidate_n, stats.production_n) >= max(min_samples, 1)
    looks = np.zeros(enough.size, dtype=bool)
    looks[check_every - 1 :: check_every] = True
    looks[-1] = True
    rate_lower = crossed_rate & (stats.rate_difference < 0)
    rate_higher = crossed_rate & (stats.rate_difference > 0)
    error_higher = crossed_error & (stats.error_difference > 0)
    stop = enough & looks & (rate_lower | rate_higher | error_higher)
    if not stop.any():
        n = int(stats.candidate_n[-1])
        return RunOutcome(Verdict.CONTINUE, "positive_outcome_rate", n, enough.size)
    i = int(np.argmax(stop))
    if rate_lower[i]:
        verdict, metric = Verdict.ROLLBACK, "positive_outcome_rate"
    elif error_higher[i]:
        verdict, metric = Verdict.ROLLBACK, "squared_error"
    else:
        verdict, metric = Verdict.PROMOTE, "positive_outcome_rate"
    return RunOutcome(verdict, metric, int(stats.candidate_n[i]), i + 1)


def run_pair(
    rng: np.random.Generator,
    scenario: AbScenario,
    alpha: float,
    min_samples: int,
    check_every: int = 1,
    rate_mixing_sd: float = RATE_MIXING_SD,
) -> tuple[RunOutcome, RunOutcome, RunOutcome]:
    """One stream, three rules: mSPRT looked at continuously, naive z-test looked at continuously,
    naive z-test looked at once at the horizon (the only way it is valid)."""
    stats = path_statistics(*draw_stream(rng, scenario), rate_mixing_sd=rate_mixing_sd)
    boundary = math.log(1.0 / alpha)
    msprt = first_decision(
        stats,
        stats.rate_log_lr >= boundary,
        stats.error_log_lr >= boundary,
        min_samples,
        check_every,
    )
    z = normal_quantile(1 - alpha / 2)
    crossed_rate = np.abs(stats.rate_z) >= z
    crossed_error = np.abs(stats.error_z) >= z
    naive = first_decision(stats, crossed_rate, crossed_error, min_samples, check_every)
    at_end = np.zeros_like(crossed_rate)
    at_end[-1] = True
    fixed = first_decision(stats, crossed_rate & at_end, crossed_error & at_end, min_samples)
    return msprt, naive, fixed
