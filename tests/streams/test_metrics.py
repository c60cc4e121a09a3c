"""What streams' scrape-time collector makes of the worker's readouts (no broker needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import BatchTally, ModelTypeReadout, StreamsMetrics, StreamsReadout

MT = "calling_score"


def exported(metrics: StreamsMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def watched(readouts: list[Mapping[str, ModelTypeReadout]]) -> StreamsMetrics:
    """Metrics whose collector reads `readouts` in turn, one per scrape."""
    metrics = StreamsMetrics([MT, "outcome_prediction"], ["o", "s"], 1000, 7 * 86_400)
    scrapes = iter(readouts)
    metrics.watch(
        StreamsReadout(
            model_types=lambda: next(scrapes),
            consumer_lag=lambda: {("o", 1): 12},
            assigned=lambda: {"o": [1], "s": []},
            commits=lambda: (3, 1_700_000_000.0),
            refusals=lambda: {},
        )
    )
    return metrics


def running_test(**changes: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "model_type": MT,
        "running": True,
        "baseline": {"samples": 40, "positive_outcome_rate": 0.5},
        "candidate": {"samples": 10, "positive_outcome_rate": 0.4},
        "decision": "continue",
        "statistics": {"rate_statistic": 1.25, "squared_error_statistic": -0.5},
    }
    view.update(changes)
    return view


def test_a_running_test_exports_its_arms_statistics_and_start() -> None:
    readout = ModelTypeReadout(
        new_samples=7, clock_started_at=1_700_000_000.0, abtest=running_test()
    )
    readout_started = ModelTypeReadout(abtest=running_test(), experiment_started_at=1_600_000_000.0)
    series = exported(watched([{MT: readout, "outcome_prediction": readout_started}]))
    assert (
        series[("relearn_streams_abtest_samples", (("arm", "production"), ("model_type", MT)))]
        == 40
    )
    assert (
        series[("relearn_streams_abtest_samples", (("arm", "candidate"), ("model_type", MT)))] == 10
    )
    assert (
        series[
            (
                "relearn_streams_abtest_statistic",
                (("metric", "positive_outcome_rate"), ("model_type", MT)),
            )
        ]
        == 1.25
    )
    assert (
        series[
            ("relearn_streams_abtest_statistic", (("metric", "squared_error"), ("model_type", MT)))
        ]
        == -0.5
    )
    assert series[("relearn_streams_new_samples", (("model_type", MT),))] == 7
    assert (
        series[
            (
                "relearn_streams_abtest_started_timestamp_seconds",
                (("model_type", "outcome_prediction"),),
            )
        ]
        == 1_600_000_000.0
    )
    assert ("relearn_streams_abtest_started_timestamp_seconds", (("model_type", MT),)) not in series
    assert series[("relearn_streams_consumer_lag", (("partition", "1"), ("topic", "o")))] == 12
    assert series[("relearn_streams_commits_total", ())] == 3


def test_a_view_of_another_shape_leaves_its_series_out_without_failing_the_scrape() -> None:
    odd = ModelTypeReadout(
        new_samples=None,
        abtest=running_test(baseline="forty", statistics=None, candidate={"samples": float("nan")}),
    )
    series = exported(watched([{MT: odd}]))
    assert not [key for key in series if key[0] == "relearn_streams_abtest_samples"]
    assert not [key for key in series if key[0] == "relearn_streams_abtest_statistic"]
    assert ("relearn_streams_new_samples", (("model_type", MT),)) not in series
    assert series[("relearn_streams_retrain_sample_threshold", ())] == 1000


def test_a_retrain_in_flight_that_changes_between_scrapes_has_ended() -> None:
    metrics = watched(
        [
            {MT: ModelTypeReadout(pending_command="c1")},
            {MT: ModelTypeReadout(pending_command=None, answered=("c1",))},
            {MT: ModelTypeReadout(pending_command="c2")},
            {MT: ModelTypeReadout(pending_command="c3")},  # c2 unanswered: timed out
            {MT: ModelTypeReadout(pending_command="c3")},
        ]
    )
    ended = [exported(metrics) for _ in range(5)]

    def count(series: Mapping[Any, float], status: str) -> float:
        return series[
            ("relearn_streams_retrains_ended_total", (("model_type", MT), ("status", status)))
        ]

    assert [count(s, "answered") for s in ended] == [0, 1, 1, 1, 1]
    assert [count(s, "timed_out") for s in ended] == [0, 0, 0, 1, 1]
    assert [s[("relearn_streams_retrain_pending", (("model_type", MT),))] for s in ended] == [
        1,
        0,
        1,
        1,
        1,
    ]


def test_a_batch_is_added_once_and_unknown_types_share_one_label() -> None:
    metrics = watched([{}])
    tally = BatchTally(
        outcomes=5,
        samples=2,
        forwarded={MT: 3, "someone_elses": 1},
        duplicates={MT: 1},
        dead_letters={"schema": 1},
    )
    metrics.batch_done(tally, 0.002, "o", "s")
    metrics.retrain_delivered(MT, "sample_threshold", 0.02)
    metrics.registry_command_delivered(MT, "set_weights")
    series = exported(metrics)
    assert series[("relearn_streams_events_consumed_total", (("topic", "o"),))] == 5
    assert series[("relearn_streams_events_consumed_total", (("topic", "s"),))] == 2
    assert series[("relearn_streams_events_forwarded_total", (("model_type", MT),))] == 3
    assert series[("relearn_streams_events_forwarded_total", (("model_type", "unknown"),))] == 1
    assert series[("relearn_streams_dead_letters_total", (("reason", "schema"),))] == 1
    assert series[("relearn_streams_dead_letters_total", (("reason", "too_large"),))] == 0
    assert series[("relearn_streams_batch_records_sum", ())] == 7
    assert series[("relearn_streams_retrain_trigger_latency_seconds_count", ())] == 1
    assert (
        series[
            ("relearn_streams_abtest_decisions_total", (("model_type", MT), ("verdict", "promote")))
        ]
        == 1
    )
