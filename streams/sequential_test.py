"""The A/B decision rule: a mixture SPRT (always-valid p-values), candidate against production.

Method (Johari, Koomen, Pekelis, Walsh, "Peeking at A/B Tests", KDD 2017): for a difference of
means estimated as d = mean_candidate - mean_production with plug-in variance
s^2 = var_candidate / n_candidate + var_production / n_production, the normal-mixture likelihood
ratio of "difference theta ~ N(0, tau^2)" against "difference = 0" is

    LR = sqrt(s^2 / (s^2 + tau^2)) * exp(tau^2 d^2 / (2 s^2 (s^2 + tau^2))).

Under H0 it is (asymptotically) a martingale, so by Ville's inequality
P(sup_n LR >= 1/alpha) <= alpha: the test may be looked at after every event. With n per arm
and s^2 = V/n this is exactly the paper's two-stream mSPRT; the unbalanced form covers a
candidate at 10% of traffic.

Two metrics are tested, each two-sided at alpha:
- the positive outcome rate (Bernoulli; variance p(1-p), with p smoothed by half a success so an
  arm that is all positives or all negatives still has a positive variance), and
- the squared error of prediction against outcome_score (variance from the running sums).
The mixture is symmetric, so under H0 each direction of each test is crossed with probability
at most about alpha/2. A ROLLBACK needs "rate lower" or "squared error higher": two one-sided
events, so the false rollback rate stays at or below alpha/2 + alpha/2 = alpha. A PROMOTE needs
"rate higher" (false promotion at or below about alpha/2) and no significant harm on squared error.

Mixing variance tau^2. The mixture is most efficient for effects near tau (the likelihood ratio at
a given d is largest for tau^2 = d^2 - s^2, and at the moment of detection d^2 >> s^2, so tau ~ the
effect). Effects worth acting on here are a few points of positive rate, so tau = 0.05 (an
absolute rate difference); `bench/sequential_simulation.py` sweeps tau and shows 0.05 is near the
fastest for 3-10 point effects while losing little on larger ones. The squared error has no
natural scale across model types, so its tau is relative: 0.1 pooled standard deviations of the
per-event squared error, the same standardized size as 5 points on a 50% rate (0.05 / 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

POSITIVE_RATE = "positive_outcome_rate"
SQUARED_ERROR = "squared_error"

# Mixing standard deviation for the positive-rate difference (absolute, see the module docstring).
RATE_MIXING_SD = 0.05
# Mixing standard deviation for the squared-error difference, in pooled standard deviations.
SQUARED_ERROR_MIXING_SD = 0.1
# Floor for a plug-in variance, so identical constant arms give LR = 1 instead of 0/0.
VARIANCE_FLOOR = 1e-12


@dataclass(frozen=True)
class ArmSummary:
    """What the test needs to know about one arm: counts and running sums, nothing per event."""

    samples: int = 0
    positives: int = 0
    squared_error_sum: float = 0.0
    squared_error_sq_sum: float = 0.0  # sum of squared_error**2, for its variance

    def add(self, positive: bool, squared_error: float) -> ArmSummary:
        return replace(
            self,
            samples=self.samples + 1,
            positives=self.positives + int(bool(positive)),
            squared_error_sum=self.squared_error_sum + squared_error,
            squared_error_sq_sum=self.squared_error_sq_sum + squared_error * squared_error,
        )

    @property
    def positive_rate(self) -> float:
        return self.positives / self.samples if self.samples else 0.0

    @property
    def mean_squared_error(self) -> float:
        return self.squared_error_sum / self.samples if self.samples else 0.0

    def rate_variance(self) -> float:
        """Per-event Bernoulli variance, p smoothed by half a success (never 0 for n >= 1)."""
        p = (self.positives + 0.5) / (self.samples + 1)
        return p * (1.0 - p)

    def squared_error_variance(self) -> float:
        """Per-event sample variance of the squared error (0 with fewer than two samples)."""
        if self.samples < 2:
            return 0.0
        mean = self.squared_error_sum / self.samples
        centered = self.squared_error_sq_sum - self.samples * mean * mean
        return max(centered / (self.samples - 1), 0.0)


class Verdict(StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    PROMOTE = "promote"


@dataclass(frozen=True)
class SequentialDecision:
    """The outcome of one look at the test, with the statistics behind it."""

    verdict: Verdict
    metric: str  # which metric decided: "positive_outcome_rate" or "squared_error"
    statistic: float  # log of the mixture likelihood ratio on the deciding metric
    boundary: float  # log(1/alpha)
    p_value: float  # always-valid p-value (1 / max(1, LR))
    production_rate: float
    candidate_rate: float
    difference: float  # candidate - production, on positive outcome rate
    ci_low: float  # always-valid (confidence sequence) interval for the difference
    ci_high: float
    # Additions beyond the fixed interface (defaults keep it backward compatible).
    production_samples: int = 0
    candidate_samples: int = 0
    rate_statistic: float = 0.0
    squared_error_statistic: float = 0.0
    production_mse: float = 0.0
    candidate_mse: float = 0.0

    def evidence(self) -> dict[str, float | int | str]:
        """JSON-ready statistics for RegistryCommandIssued.evidence."""
        return {
            "verdict": self.verdict.value,
            "metric": self.metric,
            "statistic": self.statistic,
            "boundary": self.boundary,
            "p_value": self.p_value,
            "production_rate": self.production_rate,
            "candidate_rate": self.candidate_rate,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "production_samples": self.production_samples,
            "candidate_samples": self.candidate_samples,
            "rate_statistic": self.rate_statistic,
            "squared_error_statistic": self.squared_error_statistic,
            "production_mse": self.production_mse,
            "candidate_mse": self.candidate_mse,
            "test": "mixture SPRT (normal mixture, plug-in variance), two-sided",
        }


def log_mixture_likelihood_ratio(difference: float, variance: float, mixing_sd: float) -> float:
    """log LR of the normal mixture N(0, tau^2) against 0, for an estimate d with variance s^2."""
    s2 = max(variance, VARIANCE_FLOOR)
    t2 = mixing_sd * mixing_sd
    if t2 <= 0.0:
        return 0.0
    return 0.5 * math.log(s2 / (s2 + t2)) + t2 * difference * difference / (2.0 * s2 * (s2 + t2))


def confidence_half_width(variance: float, mixing_sd: float, alpha: float) -> float:
    """Half-width of the confidence sequence: every theta whose mixture LR stays below 1/alpha."""
    s2 = max(variance, VARIANCE_FLOOR)
    t2 = mixing_sd * mixing_sd
    if t2 <= 0.0:
        return math.inf
    radius2 = 2.0 * s2 * (s2 + t2) / t2 * (math.log(1.0 / alpha) + 0.5 * math.log((s2 + t2) / s2))
    return math.sqrt(radius2)


def _variance_of_difference(
    production_variance: float, production_n: int, candidate_variance: float, candidate_n: int
) -> float:
    return production_variance / max(production_n, 1) + candidate_variance / max(candidate_n, 1)


def decide(
    production: ArmSummary, candidate: ArmSummary, alpha: float, min_samples: int
) -> SequentialDecision:
    """One look: ROLLBACK, PROMOTE or CONTINUE, valid however often it is called."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    boundary = math.log(1.0 / alpha)

    rate_difference = candidate.positive_rate - production.positive_rate
    rate_variance = _variance_of_difference(
        production.rate_variance(), production.samples, candidate.rate_variance(), candidate.samples
    )
    rate_statistic = log_mixture_likelihood_ratio(rate_difference, rate_variance, RATE_MIXING_SD)
    half_width = confidence_half_width(rate_variance, RATE_MIXING_SD, alpha)

    se_difference = candidate.mean_squared_error - production.mean_squared_error
    se_statistic = 0.0
    if production.samples >= 2 and candidate.samples >= 2:
        pooled_sd = math.sqrt(
            (production.squared_error_variance() + candidate.squared_error_variance()) / 2.0
        )
        se_variance = _variance_of_difference(
            production.squared_error_variance(),
            production.samples,
            candidate.squared_error_variance(),
            candidate.samples,
        )
        if pooled_sd > 0.0:
            se_statistic = log_mixture_likelihood_ratio(
                se_difference, se_variance, SQUARED_ERROR_MIXING_SD * pooled_sd
            )

    enough = min(production.samples, candidate.samples) >= max(min_samples, 1)
    rate_lower = enough and rate_statistic >= boundary and rate_difference < 0
    rate_higher = enough and rate_statistic >= boundary and rate_difference > 0
    error_higher = enough and se_statistic >= boundary and se_difference > 0

    if rate_lower:
        verdict, metric, statistic = Verdict.ROLLBACK, POSITIVE_RATE, rate_statistic
    elif error_higher:
        verdict, metric, statistic = Verdict.ROLLBACK, SQUARED_ERROR, se_statistic
    elif rate_higher:
        verdict, metric, statistic = Verdict.PROMOTE, POSITIVE_RATE, rate_statistic
    else:
        verdict, metric, statistic = Verdict.CONTINUE, POSITIVE_RATE, rate_statistic

    return SequentialDecision(
        verdict=verdict,
        metric=metric,
        statistic=statistic,
        boundary=boundary,
        p_value=math.exp(-max(statistic, 0.0)),
        production_rate=production.positive_rate,
        candidate_rate=candidate.positive_rate,
        difference=rate_difference,
        ci_low=max(rate_difference - half_width, -1.0),
        ci_high=min(rate_difference + half_width, 1.0),
        production_samples=production.samples,
        candidate_samples=candidate.samples,
        rate_statistic=rate_statistic,
        squared_error_statistic=se_statistic,
        production_mse=production.mean_squared_error,
        candidate_mse=candidate.mean_squared_error,
    )
