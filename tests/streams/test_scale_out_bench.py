"""bench/streams_scale_out.py's exactness check and rate: exact tables pass, any miscount fails."""

from __future__ import annotations

import math
from collections import Counter

from bench.streams_scale_out import steady_rate, verdict
from streams.testing import GroundTruth, outcome_events


def _exact(truth: GroundTruth) -> tuple[dict[str, int], dict[tuple[str, str, str], int]]:
    counts = dict(truth.per_type)
    daily = {key: day.sample_count for key, day in truth.daily.items()}
    return counts, daily


def test_two_workers_showing_the_ground_truth_are_exact() -> None:
    _, truth = outcome_events(2_000, seed=3)
    counts, daily = _exact(truth)
    forwarded = Counter(truth.valid_ids)
    assert verdict([counts, dict(counts)], [daily, dict(daily)], forwarded, truth) == []


def test_a_double_count_a_lost_id_a_repeat_and_a_silent_worker_are_each_reported() -> None:
    _, truth = outcome_events(2_000, seed=3)
    counts, daily = _exact(truth)
    model_type = sorted(truth.per_type)[0]
    over = {**counts, model_type: counts[model_type] + 1}
    day = next(iter(daily))
    off_day = {**daily, day: daily[day] - 1}
    lost, *rest = sorted(truth.valid_ids)
    forwarded = Counter(rest) + Counter([rest[0]])  # one id lost, one forwarded twice

    problems = verdict([over, None], [off_day, daily], forwarded, truth)

    assert problems == [
        f"worker 1: {model_type} counted {counts[model_type] + 1}, {counts[model_type]} valid",
        f"worker 1: 1 of {len(daily)} day rows off",
        "worker 2: /samples did not answer",
        "1 valid ids never forwarded",
        "1 ids forwarded more than once",
    ]


def test_the_rate_from_the_first_count_covers_only_what_was_left() -> None:
    assert steady_rate(10_000, 9_000, 4_500, 2.0) == 2_500.0
    assert math.isnan(steady_rate(10_000, 9_000, 9_000, 1.0))  # all counted at the first look
