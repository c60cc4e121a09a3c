"""The streams worker's Prometheus metrics (docs/metrics.md): counted once per batch, or read
from the worker's state when Prometheus scrapes."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.events import RegistryCommandType, RetrainReason
from contracts.validation import RejectReason

log = logging.getLogger(__name__)

# Labels hold bounded values only: a model type outside the catalogue is counted as this one.
UNKNOWN_MODEL_TYPE = "unknown"

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_RECORD_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
TRIGGER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

VERDICTS = ("rollback", "promote", "keep_production")
# A/B statistics as `abtest_view` reports them -> the `metric` label
STATISTICS = {"rate_z": "positive_outcome_rate", "squared_error_z": "squared_error"}
# The A/B view's arms -> the `arm` label
ARMS = {"baseline": "production", "candidate": "candidate"}


class RefusedReason(StrEnum):
    """Why a worker refused to commit (`relearn_streams_commits_refused_total{reason}`)."""

    BATCH_FAILED = "batch_failed"  # the batch loop raised: positions without their table writes
    PRODUCE_FAILED = "produce_failed"  # a forward, command or changelog record was not delivered
    FATAL_CLIENT_ERROR = "fatal_client_error"  # librdkafka reported a fatal error
    UNFLUSHED_ON_STOP = "unflushed_on_stop"  # stopping with records the broker has not taken


class RebalanceStatus(StrEnum):
    ASSIGNED = "assigned"
    REVOKED = "revoked"
    LOST = "lost"


class RetrainEndStatus(StrEnum):
    ANSWERED = "answered"
    TIMED_OUT = "timed_out"


@dataclass
class BatchTally:
    """One batch's counts, added up in the batch loop and handed over once."""

    outcomes: int = 0
    samples: int = 0
    forwarded: dict[str, int] = field(default_factory=dict)  # model type -> count
    duplicates: dict[str, int] = field(default_factory=dict)  # model type -> count
    dead_letters: dict[str, int] = field(default_factory=dict)  # reason -> count


@dataclass(frozen=True)
class ModelTypeReadout:
    """What the tables say of one model type when Prometheus scrapes (any field may be missing:
    each is read defensively from the views, whose shapes other work may change)."""

    new_samples: float | None = None
    clock_started_at: float | None = None  # epoch seconds
    pending_command: str | None = None
    answered: tuple[str, ...] = ()  # retrain commands the registry view knows as answered
    abtest: Mapping[str, Any] = field(default_factory=dict)  # `processing.abtest_view`
    experiment_started_at: float | None = None  # epoch seconds


class StreamsReadout:
    """Callables the scrape-time collector reads the worker's state through (all cheap)."""

    def __init__(
        self,
        model_types: Callable[[], Mapping[str, ModelTypeReadout]],
        consumer_lag: Callable[[], Mapping[tuple[str, int], int]],
        assigned: Callable[[], Mapping[str, list[int]]],
        commits: Callable[[], tuple[int, float]],  # (commits made, last commit or start time)
        refusals: Callable[[], Mapping[str, int]],
    ) -> None:
        self.model_types = model_types
        self.consumer_lag = consumer_lag
        self.assigned = assigned
        self.commits = commits
        self.refusals = refusals


class StreamsMetrics:
    """One collector registry per worker (tests run several in a process)."""

    def __init__(
        self,
        model_types: Iterable[str],
        consumed_topics: Iterable[str],
        sample_threshold: int,
        max_age_seconds: float,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._known = set(model_types)
        self.sample_threshold = sample_threshold
        self.max_age_seconds = max_age_seconds
        r = self.registry
        self.consumed = Counter(
            "relearn_streams_events_consumed",
            "Records read from outcome-events and training-samples",
            ["topic"],
            registry=r,
        )
        self.forwarded = Counter(
            "relearn_streams_events_forwarded",
            "Valid, new outcome events forwarded to training-samples",
            ["model_type"],
            registry=r,
        )
        self.dead_letters = Counter(
            "relearn_streams_dead_letters",
            "Outcome events sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "relearn_streams_duplicates_dropped",
            "Outcome events dropped because another message had their event id",
            ["model_type"],
            registry=r,
        )
        self.batch_duration = Histogram(
            "relearn_streams_batch_duration_seconds",
            "One batch, from the consume call's return to its state handed to the producer",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_records = Histogram(
            "relearn_streams_batch_records",
            "Records per batch",
            buckets=BATCH_RECORD_BUCKETS,
            registry=r,
        )
        self.retrain_commands = Counter(
            "relearn_streams_retrain_commands",
            "Retrain commands delivered, by reason",
            ["model_type", "reason"],
            registry=r,
        )
        self.trigger_latency = Histogram(
            "relearn_streams_retrain_trigger_latency_seconds",
            "The crossing sample's record time to the threshold command's delivery report",
            buckets=TRIGGER_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "relearn_streams_abtest_decisions",
            "A/B decisions delivered as registry commands, by verdict",
            ["model_type", "verdict"],
            registry=r,
        )
        self.rebalances = Counter(
            "relearn_streams_rebalances",
            "Partition assignment changes",
            ["status"],
            registry=r,
        )
        self.restore_duration = Histogram(
            "relearn_streams_restore_duration_seconds",
            "Restoring one assigned partition's tables from their changelogs",
            ["topic"],
            buckets=RESTORE_BUCKETS,
            registry=r,
        )
        # Created at 0 so that increase() sees the first one (docs/metrics.md).
        for topic in consumed_topics:
            self.consumed.labels(topic)
            self.restore_duration.labels(topic)
        for reason in RejectReason:
            self.dead_letters.labels(reason.value)
        for status in RebalanceStatus:
            self.rebalances.labels(status.value)
        for model_type in sorted(self._known):
            self.forwarded.labels(model_type)
            self.duplicates.labels(model_type)
            for retrain_reason in (RetrainReason.SAMPLE_THRESHOLD, RetrainReason.SCHEDULE):
                self.retrain_commands.labels(model_type, retrain_reason.value)
            for verdict in VERDICTS:
                self.decisions.labels(model_type, verdict)

    def label_of(self, model_type: str | None) -> str:
        return model_type if model_type in self._known else UNKNOWN_MODEL_TYPE

    def watch(self, readout: StreamsReadout) -> None:
        """Export what the worker's state says, read when Prometheus scrapes."""
        self.registry.register(_StateCollector(self, readout))

    # -- counted by the batch loop ------------------------------------------------------------

    def batch_done(
        self, tally: BatchTally, seconds: float, outcome_topic: str, sample_topic: str
    ) -> None:
        self.batch_duration.observe(seconds)
        self.batch_records.observe(tally.outcomes + tally.samples)
        if tally.outcomes:
            self.consumed.labels(outcome_topic).inc(tally.outcomes)
        if tally.samples:
            self.consumed.labels(sample_topic).inc(tally.samples)
        for model_type, count in tally.forwarded.items():
            self.forwarded.labels(self.label_of(model_type)).inc(count)
        for model_type, count in tally.duplicates.items():
            self.duplicates.labels(self.label_of(model_type)).inc(count)
        for reason, count in tally.dead_letters.items():
            self.dead_letters.labels(reason).inc(count)

    def retrain_delivered(
        self, model_type: str, reason: str, latency_seconds: float | None = None
    ) -> None:
        self.retrain_commands.labels(self.label_of(model_type), reason).inc()
        if latency_seconds is not None and latency_seconds >= 0:
            self.trigger_latency.observe(latency_seconds)

    def registry_command_delivered(self, model_type: str, command_type: str) -> None:
        verdict = {
            RegistryCommandType.ROLLBACK: "rollback",
            RegistryCommandType.KEEP_PRODUCTION: "keep_production",
        }.get(RegistryCommandType(command_type), "promote")
        self.decisions.labels(self.label_of(model_type), verdict).inc()

    def rebalanced(self, status: RebalanceStatus, count: int = 1) -> None:
        self.rebalances.labels(status.value).inc(count)

    def restored(self, topic: str, seconds: float) -> None:
        self.restore_duration.labels(topic).observe(seconds)


def _number(value: Any) -> float | None:
    """A finite number, or None (a view's field may be missing, None, or of another shape)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _abtest(
    model_type: str,
    readout: ModelTypeReadout,
    samples: GaugeMetricFamily,
    statistic: GaugeMetricFamily,
    started: GaugeMetricFamily,
    remaining: Mapping[str, GaugeMetricFamily],
    deadline: GaugeMetricFamily,
) -> None:
    """A running experiment's series, from whatever `abtest_view` answers (a field it lacks, or
    gives in another shape, is left out rather than failing the scrape)."""
    ab = readout.abtest if isinstance(readout.abtest, Mapping) else {}
    if not ab.get("running"):
        return
    for key, arm in ARMS.items():
        side = ab.get(key)
        for maturity in ("matured", "waiting"):
            value = _number(side.get(maturity)) if isinstance(side, Mapping) else None
            if value is not None:
                samples.add_metric([model_type, arm, maturity], value)
    stats = ab.get("statistics")
    for key, metric in STATISTICS.items():
        value = _number(stats.get(key)) if isinstance(stats, Mapping) else None
        if value is not None:
            statistic.add_metric([model_type, metric], value)
    begun = _number(ab.get("started_at"))  # the view's own, if it gives one
    if begun is None:
        begun = _number(readout.experiment_started_at)
    if begun is not None:
        started.add_metric([model_type], begun)
    budget = ab.get("remaining")
    for key, family in remaining.items():
        value = _number(budget.get(key)) if isinstance(budget, Mapping) else None
        if value is not None:
            family.add_metric([model_type], value)
    if (value := _number(ab.get("deadline"))) is not None:
        deadline.add_metric([model_type], value)


class _StateCollector(Collector):
    """Lag, assignment, commits and the small tables' state, read on every scrape: nothing on
    the hot path, and a partition this worker no longer owns simply has no lag series."""

    def __init__(self, metrics: StreamsMetrics, readout: StreamsReadout) -> None:
        self._metrics = metrics
        self._readout = readout
        # model type -> the retrain in flight at the last scrape: its end is counted when the
        # next scrape finds another (or none)
        self._pending: dict[str, str | None] = {}
        self._ended: dict[tuple[str, str], int] = {}

    def describe(self) -> Iterable[Metric]:
        return []  # read on every scrape, never at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._runtime()
        try:
            readouts = dict(self._readout.model_types())
        except Exception as exc:  # noqa: BLE001 - the tables' metrics are left out, not the rest
            log.warning("model-type state unreadable for /metrics: %s", exc)
            readouts = {}
        yield from self._tables(readouts)

    def _runtime(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "relearn_streams_consumer_lag",
            "Records between this worker's position and the end of each partition it owns",
            labels=["topic", "partition"],
        )
        for (topic, partition), records in sorted(self._readout.consumer_lag().items()):
            lag.add_metric([topic, str(partition)], records)
        assigned = GaugeMetricFamily(
            "relearn_streams_partitions_assigned",
            "Partitions this worker owns now",
            labels=["topic"],
        )
        for topic, partitions in sorted(self._readout.assigned().items()):
            assigned.add_metric([topic], len(partitions))
        made, last = self._readout.commits()
        commits = CounterMetricFamily(
            "relearn_streams_commits", "Offset commits made (after the producer flushed)"
        )
        commits.add_metric([], made)
        refused = CounterMetricFamily(
            "relearn_streams_commits_refused",
            "Times the worker refused to commit and began to stop",
            labels=["reason"],
        )
        refusals = self._readout.refusals()
        for reason in RefusedReason:
            refused.add_metric([reason.value], refusals.get(reason.value, 0))
        last_commit = GaugeMetricFamily(
            "relearn_streams_last_commit_timestamp_seconds",
            "Unix time of the last successful commit (the worker's start before its first)",
            value=last,
        )
        yield from (lag, assigned, commits, refused, last_commit)

    def _tables(self, readouts: Mapping[str, ModelTypeReadout]) -> Iterator[Metric]:
        metrics = self._metrics
        new_samples = GaugeMetricFamily(
            "relearn_streams_new_samples",
            "Samples counted since the last retrain",
            labels=["model_type"],
        )
        clock = GaugeMetricFamily(
            "relearn_streams_retrain_clock_timestamp_seconds",
            "When the schedule clock last restarted",
            labels=["model_type"],
        )
        pending = GaugeMetricFamily(
            "relearn_streams_retrain_pending",
            "1 while a retrain command is in flight, else 0",
            labels=["model_type"],
        )
        samples = GaugeMetricFamily(
            "relearn_streams_abtest_samples",
            "The running experiment's outcomes per arm, matured (in the test) or waiting",
            labels=["model_type", "arm", "maturity"],
        )
        remaining = {
            "candidate_outcomes": GaugeMetricFamily(
                "relearn_streams_abtest_remaining_outcomes",
                "Matured candidate outcomes left before the experiment's maximum",
                labels=["model_type"],
            ),
            "seconds": GaugeMetricFamily(
                "relearn_streams_abtest_remaining_seconds",
                "Event time left before the experiment's maximum duration",
                labels=["model_type"],
            ),
        }
        deadline = GaugeMetricFamily(
            "relearn_streams_abtest_deadline_timestamp_seconds",
            "When the experiment ends at the latest while outcomes keep arriving",
            labels=["model_type"],
        )
        statistic = GaugeMetricFamily(
            "relearn_streams_abtest_statistic",
            "The sequential test's statistic of the current step",
            labels=["model_type", "metric"],
        )
        started = GaugeMetricFamily(
            "relearn_streams_abtest_started_timestamp_seconds",
            "When the running experiment began",
            labels=["model_type"],
        )
        for model_type, readout in sorted(readouts.items()):
            if (value := _number(readout.new_samples)) is not None:
                new_samples.add_metric([model_type], value)
            if (value := _number(readout.clock_started_at)) is not None:
                clock.add_metric([model_type], value)
            pending.add_metric([model_type], 0 if readout.pending_command is None else 1)
            self._count_retrain_end(model_type, readout)
            _abtest(model_type, readout, samples, statistic, started, remaining, deadline)
        ended = CounterMetricFamily(
            "relearn_streams_retrains_ended",
            "In-flight retrains that ended, answered or timed out",
            labels=["model_type", "status"],
        )
        for model_type in sorted(metrics._known | set(readouts)):
            for status in RetrainEndStatus:
                ended.add_metric(
                    [model_type, status.value], self._ended.get((model_type, status.value), 0)
                )
        yield from (new_samples, clock, pending, ended, samples, statistic, started, deadline)
        yield from remaining.values()
        yield GaugeMetricFamily(
            "relearn_streams_retrain_max_age_seconds",
            "RELEARN_RETRAIN_MAX_AGE_DAYS in seconds",
            value=metrics.max_age_seconds,
        )
        yield GaugeMetricFamily(
            "relearn_streams_retrain_sample_threshold",
            "RELEARN_RETRAIN_SAMPLE_THRESHOLD",
            value=metrics.sample_threshold,
        )

    def _count_retrain_end(self, model_type: str, readout: ModelTypeReadout) -> None:
        """A retrain seen in flight at the last scrape and no longer now has ended: answered if
        the registry view knows an answer to it, else it timed out."""
        before = self._pending.get(model_type)
        now = readout.pending_command
        self._pending[model_type] = now
        if before is None or before == now:
            return
        status = (
            RetrainEndStatus.ANSWERED if before in readout.answered else RetrainEndStatus.TIMED_OUT
        )
        key = (model_type, status.value)
        self._ended[key] = self._ended.get(key, 0) + 1
