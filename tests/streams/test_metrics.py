"""What streams' scrape-time collector makes of the worker's readouts (no broker needed)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams import abtest, experiment
from streams.experiment import DecisionPlan
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
    """`/abtest`'s answer as the worker gives it (streams.abtest.summary over a real experiment):
    a 60 s window, 40 production and 10 candidate outcomes matured, 3 candidate ones waiting."""
    plan = DecisionPlan(outcome_window_seconds=60.0, allowance_seconds=0.0, first_look=5)
    state = experiment.start("e1", "v1.0", "v1.1", 0.1, 1_000.0, plan)
    rng = random.Random(7)

    def outcome(version: str, served_at: float, n: int) -> None:
        experiment.observe(
            state,
            plan,
            version=version,
            subject_id=f"s{n}",
            served_at=served_at,
            occurred_at=served_at + 1,
            positive=rng.random() < 0.5,
            squared_error=rng.random() / 4,
        )

    for n in range(40):
        outcome("v1.0", 1_001.0 + n, n)
    for n in range(10):
        outcome("v1.1", 1_001.0 + n, 100 + n)
    for n in range(3):
        outcome("v1.1", 1_200.0 + n, 200 + n)  # matures only after the others
    experiment.advance(state, plan)
    view = abtest.summary(state, plan, MT, missing_served_at=0, live=True)
    view.update(changes)
    return view


def test_a_running_test_exports_its_arms_maturity_statistics_budget_and_start() -> None:
    view = running_test()
    readout = ModelTypeReadout(new_samples=7, clock_started_at=1_700_000_000.0, abtest=view)
    series = exported(watched([{MT: readout}]))

    def one(name: str, **labels: str) -> float:
        return series[(name, tuple(sorted({"model_type": MT, **labels}.items())))]

    samples = "relearn_streams_abtest_samples"
    assert one(samples, arm="production", maturity="matured") == 40
    assert one(samples, arm="production", maturity="waiting") == 0
    assert one(samples, arm="candidate", maturity="matured") == 10
    assert one(samples, arm="candidate", maturity="waiting") == 3
    statistics = view["statistics"]
    assert statistics is not None
    statistic = "relearn_streams_abtest_statistic"
    assert one(statistic, metric="positive_outcome_rate") == statistics["rate_z"]
    assert one(statistic, metric="squared_error") == statistics["squared_error_z"]
    assert one("relearn_streams_abtest_remaining_outcomes") == 57_600 - 10
    assert one("relearn_streams_abtest_remaining_seconds") == view["remaining"]["seconds"]
    # the maximum (14 days from the start), then the last cohort's 60 s window
    assert one("relearn_streams_abtest_deadline_timestamp_seconds") == 1_000 + 14 * 86_400 + 60
    assert one("relearn_streams_abtest_started_timestamp_seconds") == 1_000
    assert one("relearn_streams_new_samples") == 7
    assert series[("relearn_streams_consumer_lag", (("partition", "1"), ("topic", "o")))] == 12
    assert series[("relearn_streams_commits_total", ())] == 3


def test_without_its_own_start_the_experiment_starts_at_the_registrys_weight_change() -> None:
    view = running_test()
    del view["started_at"]
    readout = ModelTypeReadout(abtest=view, experiment_started_at=1_600_000_000.0)
    series = exported(watched([{MT: readout}]))
    key = ("relearn_streams_abtest_started_timestamp_seconds", (("model_type", MT),))
    assert series[key] == 1_600_000_000.0


def test_a_decided_experiment_exports_no_running_series() -> None:
    series = exported(watched([{MT: ModelTypeReadout(abtest=running_test(running=False))}]))
    assert not [key for key in series if key[0].startswith("relearn_streams_abtest_remaining")]
    assert not [key for key in series if key[0] == "relearn_streams_abtest_samples"]


def test_a_view_of_another_shape_leaves_its_series_out_without_failing_the_scrape() -> None:
    odd = ModelTypeReadout(
        new_samples=None,
        abtest=running_test(
            baseline="forty", statistics=None, candidate={"matured": float("nan")}, remaining=[]
        ),
    )
    series = exported(watched([{MT: odd}]))
    assert not [key for key in series if key[0] == "relearn_streams_abtest_samples"]
    assert not [key for key in series if key[0] == "relearn_streams_abtest_statistic"]
    assert not [key for key in series if key[0].startswith("relearn_streams_abtest_remaining")]
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
