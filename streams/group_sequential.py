"""Group-sequential statistics for the A/B decision: look boundaries and subject-clustered z (pure).

Boundaries. Looks happen at planned fractions t_1 < ... < t_K of a declared maximum. A z-statistic
followed over looks behaves like Brownian motion, Z_j = S(t_j) / sqrt(t_j), so the chance that
it ever crosses boundaries b_j under the null is computed exactly by numerical integration
(Armitage, McPherson and Rowe's recursion) instead of Bonferroni. Boundaries have the
Wang-Tsiatis shape b_j = c * t_j**(delta - 1/2): delta = 1/2 is Pocock's constant boundary
(early looks as strong as late ones: fast rollback of a clearly worse candidate), delta = 0 is
O'Brien-Fleming's (conservative early). Skipping a planned look, or moving the last one
earlier, only lowers the crossing probability of a constant boundary.

Statistic. The unit is the subject, not the event: every outcome adds to one of B buckets of
its arm, the bucket being a hash of the subject salted by the experiment, so a subject's events
all land in one bucket and buckets are independent. A ratio metric (positives / outcomes,
squared error / outcomes) then has the delta-method variance sum_b (Y_b - R N_b)^2 / N^2 over
buckets (Deng, Knoblich, Lu, KDD 2018, with buckets as clusters of subjects): correct
whatever the number of events per subject and their correlation, O(1) per event (add to one
bucket), and small to keep (B sums per arm). Under the null the variance uses the pooled rate
of both arms (a rare rate's arm with no positives yet still has its variance), and never less
than the event-level variance or an arm's own. Ramp steps are
separate cohorts (an outcome belongs to the step live when it was served); their differences
are combined with inverse-variance weights, and the same subject in two steps is accounted for
because the buckets are shared across steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

_N = NormalDist()


def _crossing_probability(fractions: tuple[float, ...], bounds: Sequence[float]) -> float:
    """P(Z_j >= bounds[j] for some look j) under the null, for Brownian motion looked at `fractions`."""
    step = 0.025
    t_prev = fractions[0]
    upper = bounds[0] * math.sqrt(t_prev)
    total = 1.0 - _N.cdf(bounds[0])
    low = -8.0 * math.sqrt(t_prev)
    grid = np.arange(low, upper, step * math.sqrt(t_prev))
    sd = math.sqrt(t_prev)
    density = np.exp(-0.5 * (grid / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    width = grid[1] - grid[0] if len(grid) > 1 else 0.0
    for t, bound in zip(fractions[1:], bounds[1:], strict=True):
        dt = t - t_prev
        sd = math.sqrt(dt)
        upper = bound * math.sqrt(t)
        z = (upper - grid) / sd
        tail = 0.5 * np.vectorize(math.erfc)(z / math.sqrt(2.0))
        total += float(np.sum(density * tail) * width)
        low = -8.0 * math.sqrt(t)
        new_grid = np.arange(low, upper, step * math.sqrt(t))
        kernel = np.exp(-0.5 * ((new_grid[:, None] - grid[None, :]) / sd) ** 2) / (
            sd * math.sqrt(2 * math.pi)
        )
        density = kernel @ density * width
        grid = new_grid
        width = grid[1] - grid[0] if len(grid) > 1 else 0.0
        t_prev = t
    return total


@lru_cache(maxsize=64)
def wang_tsiatis_boundaries(
    fractions: tuple[float, ...], alpha: float, delta: float
) -> tuple[float, ...]:
    """One-sided z boundaries c * t**(delta - 1/2) whose null crossing probability is alpha."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not fractions or any(b <= a for a, b in zip(fractions, fractions[1:], strict=False)):
        raise ValueError("fractions must be increasing")
    shape = [t ** (delta - 0.5) for t in fractions]
    low, high = 0.0, 10.0
    for _ in range(50):
        c = (low + high) / 2
        if _crossing_probability(fractions, [c * s for s in shape]) > alpha:
            low = c
        else:
            high = c
    return tuple(high * s for s in shape)


@dataclass(frozen=True)
class BucketSums:
    """Per-bucket sums of one arm in one cohort (outcomes, positives, squared error), and the
    arm's total of squared error squared (for the event-level variance floor)."""

    n: tuple[float, ...]
    y: tuple[float, ...]
    e: tuple[float, ...]
    e2: float = 0.0


@dataclass(frozen=True)
class Comparison:
    """Candidate minus production on one metric, combined over ramp steps."""

    difference: (
        float  # candidate - (1 + margin) * production (log scale: log ratio - log(1 + margin))
    )
    standard_error: float
    z: float
    candidate_mean: float  # outcome-weighted over steps
    production_mean: float


def _step_statistics(
    candidate: BucketSums, production: BucketSums, metric: str, k: float
) -> tuple[float, float, list[float]] | None:
    """(difference, null variance, bucket influences) of one step, None if an arm is empty."""
    nc, np_ = sum(candidate.n), sum(production.n)
    if nc <= 0 or np_ <= 0:
        return None
    vc = candidate.y if metric == "rate" else candidate.e
    vp = production.y if metric == "rate" else production.e
    sc, sp = sum(vc), sum(vp)
    baseline = (sc / k + sp) / (nc + np_)  # the production mean if the null held
    buckets = len(vc)
    # Per-outcome variance under the null, pooled over both arms (a random split makes them
    # exchangeable), with buckets as clusters of subjects...
    residuals = [
        (yc / k - baseline * n_c) + (yp - baseline * n_p)
        for yc, n_c, yp, n_p in zip(vc, candidate.n, vp, production.n, strict=True)
    ]
    clustered = buckets / max(buckets - 1, 1) * sum(r * r for r in residuals) / (nc + np_)
    # ...never below the event-level variance: subjects' events are not negatively correlated,
    # and a few dozen buckets can underestimate by chance.
    mean_c, mean_p = sc / nc, sp / np_
    if metric == "rate":
        floor = baseline * (1.0 - baseline)
        own_c, own_p = mean_c * (1.0 - mean_c), mean_p * (1.0 - mean_p)
    else:
        floor = (candidate.e2 / (k * k) + production.e2) / (nc + np_) - baseline * baseline
        own_c, own_p = candidate.e2 / nc - mean_c**2, production.e2 / np_ - mean_p**2
    sigma2 = max(clustered, floor, 0.0)
    # An arm whose own variance is larger (more positives than pooled at a rare rate) keeps it:
    # counts of rare events are skewed towards the excess, which the normal tail would
    # understate, so an arm's excess never looks more significant than under its own rate.
    variance = max(k * k * sigma2, own_c) / nc + k * k * max(sigma2, own_p) / np_
    influence = [
        (yc - k * baseline * n_c) / nc - k * (yp - baseline * n_p) / np_
        for yc, n_c, yp, n_p in zip(vc, candidate.n, vp, production.n, strict=True)
    ]
    if metric == "log_squared_error":
        if baseline <= 0.0:
            return None
        # The same test on the log of the ratio of means (delta method: divide by k * baseline,
        # the candidate's mean under the null).
        scale = k * baseline
        tiny = 1e-3 * baseline  # an arm with no error at all reads as 1,000 times better
        difference = math.log(max(mean_c / k, tiny)) - math.log(max(mean_p, tiny))
        return difference, variance / scale**2, [x / scale for x in influence]
    return mean_c - k * mean_p, variance, influence


def compare(
    steps: Sequence[tuple[BucketSums, BucketSums]], metric: str, margin: float = 0.0
) -> Comparison:
    """z of candidate - (1 + margin) * production on `metric` ("rate" or "squared_error"), or of
    log(candidate / production) - log(1 + margin) ("log_squared_error": squared error is a product
    of skewed factors, and over a few hundred outcomes the log of a ratio of means has a normal
    tail where the difference of means has a heavier upper one).

    `steps` holds (candidate, production) bucket sums per ramp step. Each step's variance is
    taken under the null (candidate = (1 + margin) * production); steps are combined with
    inverse-variance weights, plus the covariance that subjects present in several steps add
    (from the buckets' influences, which the steps share).
    """
    k = 1.0 + margin
    stats = [_step_statistics(c, p, metric, k) for c, p in steps]
    cand_total = sum(sum(c.y if metric == "rate" else c.e) for c, _ in steps)
    prod_total = sum(sum(p.y if metric == "rate" else p.e) for _, p in steps)
    cand_n = sum(sum(c.n) for c, _ in steps)
    prod_n = sum(sum(p.n) for _, p in steps)
    cand_mean = cand_total / cand_n if cand_n else 0.0
    prod_mean = prod_total / prod_n if prod_n else 0.0
    live = [s for s in stats if s is not None and s[1] > 0.0]
    if not live:
        return Comparison(0.0, 0.0, 0.0, cand_mean, prod_mean)
    inverse = [1.0 / v for _, v, _ in live]
    weights = [w / sum(inverse) for w in inverse]
    difference = sum(w * d for w, (d, _, _) in zip(weights, live, strict=True))
    variance = sum(w * w * v for w, (_, v, _) in zip(weights, live, strict=True))
    if len(live) > 1:
        buckets = len(live[0][2])
        scale = buckets / max(buckets - 1, 1)
        combined = [
            sum(w * inf[b] for w, (_, _, inf) in zip(weights, live, strict=True))
            for b in range(buckets)
        ]
        alone = sum(
            w * w * sum(x * x for x in inf) for w, (_, _, inf) in zip(weights, live, strict=True)
        )
        variance += max(0.0, scale * (sum(x * x for x in combined) - alone))
    se = math.sqrt(variance)
    buckets = len(live[0][2])
    return Comparison(difference, se, _t_to_z(difference / se, buckets - 1), cand_mean, prod_mean)


def _t_to_z(t: float, df: int) -> float:
    """The normal quantile of a t statistic's tail (Wallace's approximation, 1959).

    The variance comes from B buckets, so the statistic is t-like with B - 1 degrees of
    freedom; read as normal it would cross a 2.5-sigma boundary ~25% too often with 64 buckets
    when few subjects return many times."""
    if df <= 0:
        return 0.0
    magnitude = math.sqrt(df * math.log1p(t * t / df)) * (8 * df + 1) / (8 * df + 3)
    return math.copysign(magnitude, t)
