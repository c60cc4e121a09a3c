"""One streams worker: wiring of the runtime's parts into one consumer-group member.

Per batch of messages (outcome-events and training-samples, whichever partitions this worker
owns) `streams.batches` runs `streams.processing` and writes every table key the batch changed
once to its changelog (`streams.changelog`). Offsets are committed only after the producer
(`streams.sender`) has flushed every forward, command and changelog record (at-least-once,
`streams.committer`), and every table value remembers the last source offset it applied, so a
replay after a crash or a rebalance (`streams.partitions`) changes nothing twice.

Commands are made durable before the state that records them: a state that says "command sent"
is never on the changelog without its command on the bus.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from bus.clients import ConsumerOptions, make_consumer
from contracts.model_types import ModelTypeCatalog
from streams import processing, rules, tables
from streams.batches import BatchProcessor, next_batch
from streams.changelog import Changelogs, ChangelogWriter
from streams.committer import Committer
from streams.experiment import DecisionPlan
from streams.metrics import ModelTypeReadout, RefusedReason, StreamsMetrics, StreamsReadout
from streams.partitions import OwnedTables, Rebalancer
from streams.registry_follower import RegistryFollower
from streams.sender import Sender
from streams.settings import StreamsSettings
from streams.views import TableViews

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
LAG_SECONDS = 1.0  # how often the loop reads its partitions' lag for /metrics


class Worker:
    """Runs until `stop()`; `run()` is the whole life of one group member."""

    def __init__(self, settings: StreamsSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.catalog: ModelTypeCatalog = settings.model_types()
        self.rules = processing.StreamRules(
            retrain_sample_threshold=settings.retrain_sample_threshold,
            retrain_max_age_seconds=settings.retrain_max_age_days * SECONDS_PER_DAY,
            retrain_pending_timeout_seconds=settings.retrain_pending_timeout_seconds,
            decision_plan=DecisionPlan(
                first_look=settings.abtest_first_look,
                alpha_rollback=settings.rollback_alpha,
                max_candidate_outcomes=settings.abtest_max_candidate_outcomes,
                allowance_seconds=settings.abtest_watermark_allowance_seconds,
            ),
            outcome_windows={
                name: spec.outcome_window_seconds
                for name in self.catalog.names()
                if (spec := self.catalog.get(name)) is not None
            },
        )
        self.changelogs = Changelogs(
            settings.app_id, rules.dedupe_ttl_seconds(settings.dedupe_window_hours)
        )
        self.follower = RegistryFollower(
            settings.bootstrap_servers, self.topics.registry_events, self.topics.retrain_commands
        )
        self.views = TableViews(
            settings.bootstrap_servers,
            {name: self.changelogs.topics[name] for name in tables.SMALL_TABLES},
        )
        self._stopping = threading.Event()
        self.owned = OwnedTables(self.changelogs, settings.data_dir)
        self.committer = Committer(self._flush, self._fail)
        self.rebalancer = Rebalancer(self.topics, self.owned, self.committer)
        self.metrics: StreamsMetrics | None = None
        if settings.streams_metrics:
            self.metrics = StreamsMetrics(
                self.catalog.names(),
                [self.topics.outcome_events, self.topics.training_samples],
                settings.retrain_sample_threshold,
                settings.retrain_max_age_days * SECONDS_PER_DAY,
            )
            self.metrics.watch(
                StreamsReadout(
                    model_types=self.model_type_readouts,
                    consumer_lag=self.consumer_lag,
                    assigned=lambda: self.assigned,
                    commits=lambda: (self.committer.commits_made, self.committer.last_commit_time),
                    refusals=lambda: dict(self.committer.refusals),
                )
            )
            self.rebalancer.metrics = self.metrics
        self.fatal_error: str | None = None  # set when a client error ends the worker
        self.last_schedule_check = time.monotonic()
        self.manual_retrains_checked = 0  # the follower's count when the schedule was checked
        self._sender: Sender | None = None
        self._batches: BatchProcessor | None = None
        self._lag: dict[tuple[str, int], int] = {}
        self._lag_read_at = 0.0

    # -- what the web views read --------------------------------------------------------------

    @property
    def commits_refused(self) -> str | None:
        return self.committer.commits_refused

    @property
    def assigned(self) -> dict[str, list[int]]:
        return self.rebalancer.assigned()

    @property
    def events_processed(self) -> int:
        return self._batches.events_processed if self._batches is not None else 0

    def knows(self, model_type: str) -> bool:
        return model_type in self.catalog

    @property
    def sample_threshold(self) -> int:
        return self.settings.retrain_sample_threshold

    def health(self) -> dict[str, Any]:
        return {
            "assigned": self.assigned,
            "events_processed": self.events_processed,
            "tables_caught_up": self.views.caught_up,
            "tables_held_back": self.views.held_back,
            "registry_events_seen": self.follower.events_seen,
            "registry_caught_up": self.follower.caught_up,
            "manual_retrains_seen": self.follower.manual_retrains_seen,
        }

    def readiness(self) -> dict[str, str]:
        """/readyz: each check "ok" or why not (read from the web thread)."""
        return {
            "broker": self._broker_check(),
            "partitions": self._partitions_check(),
            "tables": "ok" if self.views.caught_up else "reading the tables' changelogs",
        }

    def _broker_check(self) -> str:
        sender = self._sender
        if sender is None:
            return "starting: no producer yet (reading registry-events first)"
        try:
            sender.producer.list_topics(timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - any failure means the broker is not reachable
            return f"unreachable: {exc}"
        return "ok"

    def _partitions_check(self) -> str:
        if self.fatal_error or self.committer.commits_refused:
            return f"stopping: {self.fatal_error or self.committer.commits_refused}"
        if self.rebalancer.restoring:
            return "restoring the assigned partitions' tables from their changelogs"
        if self.rebalancer.assignments == 0:
            return "waiting for the group's first assignment"
        return "ok"

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        """The lag the batch loop last read, for the partitions this worker owns now (read by
        the web thread: it never calls the consumer, which the loop is using)."""
        assigned = self.assigned
        return {
            (topic, partition): records
            for (topic, partition), records in self._lag.items()
            if partition in assigned.get(topic, ())
        }

    def _read_lag(self, consumer: Consumer) -> None:
        """Records between the position and the end of each owned partition, the end as of the
        consumer's last fetch (cached: no broker call). On the loop's thread, once a second."""
        positions = self.committer.positions
        lag: dict[tuple[str, int], int] = {}
        for topic, partitions in self.assigned.items():
            for partition in partitions:
                tp = TopicPartition(topic, partition)
                try:
                    high = consumer.get_watermark_offsets(tp, cached=True)[1]
                    position = positions.get((topic, partition))
                    if position is None:  # nothing processed since it was assigned
                        position = consumer.position([tp])[0].offset
                except KafkaException:  # not fetched yet
                    continue
                if high >= 0 and position >= 0:
                    lag[(topic, partition)] = max(0, high - position)
        self._lag = lag  # replaced whole: the web thread reads one or the other

    def model_type_readouts(self) -> dict[str, ModelTypeReadout]:
        """What the followed tables say of each model type, for /metrics: the views' own
        answers (`processing.samples_view`, `processing.abtest_view`), read defensively."""
        if not self.views.caught_up:
            return {}
        states = self.views.table(tables.MODEL_TYPES)
        registry = dict(self.follower.views)
        readouts: dict[str, ModelTypeReadout] = {}
        for model_type in self.catalog.names():
            if model_type not in states:
                continue
            try:
                samples = processing.samples_view(states, model_type, self.sample_threshold)
                counter = processing.ModelTypeState.load(states.get(model_type)).counter
                ab = processing.abtest_view(states, model_type)
            except Exception as exc:  # noqa: BLE001 - one unreadable state skips its series only
                log.warning("model_type=%s: state unreadable for /metrics: %s", model_type, exc)
                continue
            view = registry.get(model_type)
            changed_at = getattr(view, "changed_at", None)
            readouts[model_type] = ModelTypeReadout(
                new_samples=samples.get("new_samples"),
                clock_started_at=getattr(counter, "clock_started_at", None),
                pending_command=samples.get("retrain_in_flight"),
                answered=tuple(getattr(view, "answered", ())),
                abtest=ab,
                experiment_started_at=changed_at.timestamp() if changed_at else None,
            )
        return readouts

    # -- life cycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        self.changelogs.ensure(self.settings)
        self.follower.start()
        self.views.start()
        self._await_registry_view()
        sender = self._sender = Sender(
            self.settings.bootstrap_servers, self._stopping, self._fail, self._on_client_error
        )
        batches = self._batches = BatchProcessor(
            self.topics,
            self.catalog,
            self.rules,
            self.follower,
            self.owned,
            self.committer,
            sender,
            ChangelogWriter(
                self.changelogs,
                sender,
                self.committer.on_changelog_delivery,
                lambda why: self.committer.refuse(why, RefusedReason.UNFLUSHED_ON_STOP),
            ),
            self.metrics,
        )
        restorer = self.rebalancer.restorer = make_consumer(
            self.settings.bootstrap_servers,
            f"{self.settings.app_id}-restore",
            # the broker answers a fetch at once when there is data; at the end of a changelog
            # it would hold the request for fetch.wait.max.ms (500 by default) per partition
            ConsumerOptions(auto_commit=False, fetch_wait_max_ms=10),
        )
        session_ms = int(self.settings.streams_session_timeout_seconds * 1000)
        consumer = self.committer.consumer = make_consumer(
            self.settings.bootstrap_servers,
            self.settings.app_id,
            ConsumerOptions(
                auto_commit=False,
                assignment_strategy="cooperative-sticky",
                session_timeout_ms=session_ms,
                heartbeat_interval_ms=min(3000, session_ms // 5),
                fetch_wait_max_ms=20,
                queued_max_messages_kbytes=65_536,
                error_cb=self._on_client_error,
            ),
        )
        consumer.subscribe(
            [self.topics.outcome_events, self.topics.training_samples],
            on_assign=self.rebalancer.on_assign,
            on_revoke=self.rebalancer.on_revoke,
            on_lost=self.rebalancer.on_lost,
        )
        log.info(
            "streams worker %s started (group %s)", self.settings.web_url, self.settings.app_id
        )
        try:
            self._loop(consumer, batches)
        except BaseException as exc:
            # Closing the consumer below revokes its partitions, which commits: not now, the
            # batch that failed has positions without their table writes.
            self.committer.refuse(f"the batch loop failed: {exc!r}", RefusedReason.BATCH_FAILED)
            raise
        finally:
            log.info("streams worker leaving the group")
            consumer.close()
            sender.close()
            restorer.close()
            self.follower.stop()
            self.views.stop()
            self.owned.close()

    def _loop(self, consumer: Consumer, batches: BatchProcessor) -> None:
        interval = self.settings.streams_commit_interval_seconds
        while not self._stopping.is_set():
            messages = next_batch(consumer)
            if messages:
                batches.process(messages)
            self._maybe_check_schedule(batches)
            if self.committer.due(interval):
                self._commit()
            if self.metrics is not None and time.monotonic() - self._lag_read_at >= LAG_SECONDS:
                self._read_lag(consumer)
                self._lag_read_at = time.monotonic()
        self._commit()

    def _commit(self) -> None:
        self.committer.commit(self.owned.seen)

    def _flush(self) -> bool:
        assert self._sender is not None
        return self._sender.flush()

    def _on_client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fail(f"fatal client error: {error}", RefusedReason.FATAL_CLIENT_ERROR)
        else:
            log.warning("Kafka client: %s", error)

    def _fail(self, why: str, reason: str = RefusedReason.PRODUCE_FAILED) -> None:
        """Stop with a non-zero exit, committing nothing more: the next owner replays."""
        log.error("stopping: %s", why)
        self.committer.refuse(why, reason)
        self.fatal_error = why
        self._stopping.set()

    def _await_registry_view(self) -> None:
        """Join the group only once registry-events has been read (bounded by
        `registry_catch_up_seconds`): until then a threshold crossing is not held for a running
        canary, and samples skip the A/B test. A cluster without registry-events has nothing to
        read; one that does not answer is waited for no longer than the bound, and the view then
        fills in while the worker runs."""
        deadline = time.monotonic() + self.settings.registry_catch_up_seconds
        while not (self.follower.caught_up or self.follower.nothing_to_follow):
            if self._stopping.is_set() or time.monotonic() >= deadline:
                log.warning("registry-events not read yet: starting without the registry view")
                return
            time.sleep(0.02)

    def _maybe_check_schedule(self, batches: BatchProcessor) -> None:
        """The schedule trigger, and the counters a new manual retrain starts again: checked
        every `schedule_check_seconds`, and at once when the follower has seen a manual retrain."""
        now = time.monotonic()
        manual_retrains = self.follower.manual_retrains_seen
        if (
            now - self.last_schedule_check < self.settings.schedule_check_seconds
            and manual_retrains == self.manual_retrains_checked
        ):
            return
        self.last_schedule_check = now
        self.manual_retrains_checked = manual_retrains
        batches.check_schedule()
