"""One streams worker: a consumer-group member that runs `streams.processing` over batches.

Per batch of messages (outcome-events and training-samples, whichever partitions this worker
owns): outcome events are validated, de-duplicated and forwarded; training samples are counted
into the model-type state and the daily performance; then every table key the batch changed is
written once to its changelog. Offsets are committed only after the producer has flushed every
forward, command and changelog record (at-least-once), and every table value remembers the last
source offset it applied, so a replay after a crash or a rebalance changes nothing twice.

Commands are made durable before the state that records them: a state that says "command sent"
is never on the changelog without its command on the bus.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from bus.admin import ensure_topics
from bus.clients import make_consumer, make_producer
from bus.dead_letters import Headers, dead_letter
from contracts.model_types import ModelTypeCatalog
from streams import processing, rules, tables
from streams.processing import SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, Output
from streams.registry_follower import RegistryFollower
from streams.settings import StreamsSettings
from streams.views import TableViews

log = logging.getLogger(__name__)


def _overrides(config: dict[str, Any]) -> dict[str, Any]:
    """librdkafka settings beyond bus.clients.ConsumerOptions (typed as such for mypy)."""
    return config


SECONDS_PER_DAY = 86_400.0
MAX_BATCH = 5_000


def _header(headers: Any, name: str) -> bytes | None:
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items or ():
        if key == name:
            return value if isinstance(value, bytes) else None
    return None


def _record_millis(message: Message) -> int | None:
    """The record's timestamp in epoch milliseconds, or None when it has none."""
    kind, millis = message.timestamp()
    return None if kind == TIMESTAMP_NOT_AVAILABLE else millis


def _source_position(headers: Any) -> tuple[int, int] | None:
    """(partition, offset) of the outcome event a forwarded sample came from, if it says."""
    partition = _header(headers, SOURCE_PARTITION_HEADER)
    offset = _header(headers, SOURCE_OFFSET_HEADER)
    if partition is None or offset is None:
        return None
    try:
        return int(partition), int(offset)
    except ValueError:
        return None


class Worker:
    """Runs until `stop()`; `run()` is the whole life of one group member."""

    def __init__(self, settings: StreamsSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.catalog: ModelTypeCatalog = settings.model_types()
        self.rules = processing.StreamRules(
            retrain_sample_threshold=settings.retrain_sample_threshold,
            retrain_max_age_seconds=settings.retrain_max_age_days * SECONDS_PER_DAY,
            rollback_alpha=settings.rollback_alpha,
            abtest_min_samples=settings.abtest_min_samples,
            retrain_pending_timeout_seconds=settings.retrain_pending_timeout_seconds,
        )
        self.outputs = {
            Output.RETRAIN: self.topics.retrain_commands,
            Output.REGISTRY: self.topics.registry_commands,
        }
        self.dedupe_window_seconds = rules.dedupe_ttl_seconds(settings.dedupe_window_hours)
        self.changelogs = {
            name: tables.changelog_topic(settings.app_id, name)
            for name in (*tables.OUTCOME_TABLES, *tables.SAMPLE_TABLES)
        }
        self.follower = RegistryFollower(
            settings.bootstrap_servers, self.topics.registry_events, self.topics.retrain_commands
        )
        self.views = TableViews(
            settings.bootstrap_servers,
            {name: self.changelogs[name] for name in tables.SMALL_TABLES},
        )
        self._stopping = threading.Event()
        # Tables of the partitions this worker owns, by source partition.
        self.seen: dict[int, tables.SeenEventIds] = {}
        self.rejections: dict[int, tables.ChangelogTable] = {}
        self.states: dict[int, tables.ChangelogTable] = {}
        self.performance: dict[int, tables.ChangelogTable] = {}
        self.positions: dict[tuple[str, int], int] = {}  # next offset to commit
        self.committed: dict[tuple[str, int], int] = {}  # what the last commits sent
        # last seen-changelog offset acknowledged since the last commit, by partition
        self.delivered_seen: dict[int, int] = {}
        self.events_processed = 0
        self.fatal_error: str | None = None  # set when a client error ends the worker
        # Set when processed work may not be durable (a batch cut short, a delivery that
        # failed): from then on nothing is committed, and the next owner replays.
        self.commits_refused: str | None = None
        self.last_commit = time.monotonic()
        self.last_schedule_check = time.monotonic()
        self.manual_retrains_checked = 0  # the follower's count when the schedule was checked
        # (record millis, batch clock, arrival) of the last outcome event: see _arrival
        self._arrivals: tuple[int | None, datetime | None, datetime] = (
            None,
            None,
            datetime.now(UTC),
        )
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._restorer: Consumer | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()

    @property
    def assigned(self) -> dict[str, list[int]]:
        return {
            self.topics.outcome_events: sorted(self.seen),
            self.topics.training_samples: sorted(self.states),
        }

    def run(self) -> None:
        self._ensure_changelog_topics()
        self.follower.start()
        self.views.start()
        self._await_registry_view()
        self._producer = make_producer(
            self.settings.bootstrap_servers,
            **{
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                # Java's partitioner: the same key lands where other clients expect it.
                "partitioner": "murmur2_random",
                # Never give up on a message: a broker outage blocks the next commit instead.
                "message.timeout.ms": 0,
                "error_cb": self._on_client_error,
                "on_delivery": self._on_delivery,
            },
        )
        self._restorer = make_consumer(
            self.settings.bootstrap_servers,
            f"{self.settings.app_id}-restore",
            # the broker answers a fetch at once when there is data; at the end of a changelog
            # it would hold the request for fetch.wait.max.ms (500 by default) per partition
            **_overrides({"enable.auto.commit": False, "fetch.wait.max.ms": 10}),
        )
        session_ms = int(self.settings.streams_session_timeout_seconds * 1000)
        self._consumer = make_consumer(
            self.settings.bootstrap_servers,
            self.settings.app_id,
            **_overrides(
                {
                    "enable.auto.commit": False,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "session.timeout.ms": session_ms,
                    "heartbeat.interval.ms": min(3000, session_ms // 5),
                    "fetch.wait.max.ms": 20,
                    "queued.max.messages.kbytes": 65_536,
                    "error_cb": self._on_client_error,
                }
            ),
        )
        self._consumer.subscribe(
            [self.topics.outcome_events, self.topics.training_samples],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info(
            "streams worker %s started (group %s)", self.settings.web_url, self.settings.app_id
        )
        try:
            while not self._stopping.is_set():
                messages = self._next_batch()
                if messages:
                    self._process(messages)
                self._maybe_check_schedule()
                if (
                    time.monotonic() - self.last_commit
                    >= self.settings.streams_commit_interval_seconds
                ):
                    self._commit()
            self._commit()
        except BaseException as exc:
            # Closing the consumer below revokes its partitions, which commits: not now, the
            # batch that failed has positions without their table writes.
            self._refuse_commits(f"the batch loop failed: {exc!r}")
            raise
        finally:
            log.info("streams worker leaving the group")
            self._consumer.close()
            self._producer.flush(10)
            self._restorer.close()
            self.follower.stop()
            self.views.stop()
            for store in self.seen.values():
                store.close()

    def _on_client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fail(f"fatal client error: {error}")
        else:
            log.warning("Kafka client: %s", error)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """Every produced message ends here (from poll/flush): a failed one means a forward,
        command or changelog record is missing, so the source offsets must not be committed."""
        if error is not None:
            self._fail(f"delivery to {message.topic()} failed: {error}")

    def _fail(self, why: str) -> None:
        """Stop with a non-zero exit, committing nothing more: the next owner replays."""
        log.error("stopping: %s", why)
        self._refuse_commits(why)
        self.fatal_error = why
        self._stopping.set()

    def _refuse_commits(self, why: str) -> None:
        if self.commits_refused is None:
            log.error("no more offset commits from this worker (the next owner replays): %s", why)
            self.commits_refused = why

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

    def _ensure_changelog_topics(self) -> None:
        configs = {
            # the dedupe changelog is bounded by the window, like the local dedupe buckets
            topic: (
                {
                    "cleanup.policy": "compact,delete",
                    "retention.ms": str(self.dedupe_window_seconds * 1000),
                }
                if name == tables.SEEN
                else {"cleanup.policy": "compact"}
            )
            for name, topic in self.changelogs.items()
        }
        ensure_topics(
            self.settings.bootstrap_servers,
            configs,
            self.settings.topic_partitions,
            self.settings.topic_replication,
        )

    # -- rebalances ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        started = time.monotonic()
        for tp in partitions:
            if tp.topic == self.topics.outcome_events:
                self._restore_outcome_partition(tp.partition)
            elif tp.topic == self.topics.training_samples:
                self._restore_sample_partition(tp.partition)
        log.info(
            "assigned %s, tables restored in %.2f s",
            [(tp.topic, tp.partition) for tp in partitions],
            time.monotonic() - started,
        )

    def _restore_outcome_partition(self, partition: int) -> None:
        assert self._restorer is not None
        store = tables.SeenEventIds(
            self.settings.data_dir / f"dedupe-{partition}", self.dedupe_window_seconds
        )
        end = tables.read_changelog(
            self._restorer,
            self.changelogs[tables.SEEN],
            partition,
            store.checkpoint,
            store.restore_batch,
            progress=store.set_checkpoint,
        )
        store.set_checkpoint(end)
        self.seen[partition] = store
        self.rejections[partition] = self._restore_small(tables.REJECTIONS, partition)

    def _restore_sample_partition(self, partition: int) -> None:
        self.states[partition] = self._restore_small(tables.MODEL_TYPES, partition)
        self.performance[partition] = self._restore_small(tables.PERFORMANCE, partition)

    def _restore_small(self, name: str, partition: int) -> tables.ChangelogTable:
        assert self._restorer is not None
        table = tables.ChangelogTable()

        def apply(records: list[tuple[bytes, bytes | None]]) -> None:
            for key, value in records:
                table.restore(key, value)

        tables.read_changelog(self._restorer, self.changelogs[name], partition, 0, apply)
        return table

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Between batches: everything processed is on its way; make it durable, commit it.
        self._commit(only={(tp.topic, tp.partition) for tp in partitions})
        self._drop(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "partitions lost (another worker owns them now): %s",
            [(tp.topic, tp.partition) for tp in partitions],
        )
        self._drop(partitions)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)
            self.committed.pop((tp.topic, tp.partition), None)
            if tp.topic == self.topics.outcome_events:
                store = self.seen.pop(tp.partition, None)
                if store is not None:
                    store.close()
                self.rejections.pop(tp.partition, None)
                self.delivered_seen.pop(tp.partition, None)
            elif tp.topic == self.topics.training_samples:
                self.states.pop(tp.partition, None)
                self.performance.pop(tp.partition, None)
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])

    # -- the batch loop -----------------------------------------------------------------------

    def _next_batch(self) -> list[Message]:
        assert self._consumer is not None
        messages = self._consumer.consume(MAX_BATCH, timeout=0)
        if messages:
            return messages
        first = self._consumer.poll(0.05)  # waits for the next message without batching delay
        if first is None:
            return []
        return [first, *self._consumer.consume(MAX_BATCH - 1, timeout=0)]

    def _process(self, messages: list[Message]) -> None:
        now = datetime.now(UTC)
        clock = time.time()
        commands = False
        outcome_topic = self.topics.outcome_events
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            topic = message.topic() or ""
            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
            if topic == outcome_topic:
                if partition not in self.seen:  # revoked while the batch was fetched
                    continue
                self._on_outcome(message, partition, offset, now)
            else:
                if partition not in self.states:
                    continue
                commands |= self._on_sample(message, partition, clock)
            self.positions[(topic, partition)] = offset + 1
            self.events_processed += 1
        self._write_changelogs(commands)

    def _on_outcome(self, message: Message, partition: int, offset: int, now: datetime) -> None:
        assert self._producer is not None
        result = processing.handle_outcome(
            message.value(),
            partition,
            offset,
            self.seen[partition],
            self.rejections[partition],
            self.catalog,
            self._arrival(message, now),
        )
        if result.rejected is not None:
            log.warning(
                "rejected topic=%s partition=%s offset=%s reason=%s detail=%s",
                message.topic(),
                partition,
                offset,
                result.rejected.reason.value,
                result.rejected.detail,
            )
            value, headers = dead_letter(
                message, result.rejected.reason.value, result.rejected.detail
            )
            self._produce(self.topics.outcome_events_dlq, message.key(), value, headers)
        elif result.forward is not None:
            self._produce(
                self.topics.training_samples,
                (result.model_type or "").encode(),
                result.forward,
                [
                    (SOURCE_PARTITION_HEADER, str(partition).encode()),
                    (SOURCE_OFFSET_HEADER, str(offset).encode()),
                ],
            )

    def _arrival(self, message: Message, now: datetime) -> datetime:
        """`rules.arrival_time` of a record; records of one batch often share a millisecond."""
        millis = _record_millis(message)
        cached = self._arrivals
        if cached[0] != millis or cached[1] is not now:
            cached = self._arrivals = (millis, now, rules.arrival_time(millis, now))
        return cached[2]

    def _on_sample(self, message: Message, partition: int, clock: float) -> bool:
        source = _source_position(message.headers())
        if source is None:
            log.warning(
                "training sample without readable source headers skipped: partition=%s offset=%s",
                partition,
                message.offset(),
            )
            return False
        try:
            emitted = processing.handle_sample(
                message.value() or b"",
                *source,
                self.states[partition],
                self.performance[partition],
                self.follower.views,
                self.rules,
                clock,
                self.follower.caught_up,
            )
        except processing.MalformedSample as exc:
            log.warning(
                "malformed training sample dead-lettered partition=%s offset=%s: %s",
                partition,
                message.offset(),
                exc,
            )
            value, headers = dead_letter(message, "schema", str(exc))
            self._produce(self.topics.internal_dlq, message.key(), value, headers)
            return False
        self._send(emitted)
        return bool(emitted)

    def _send(self, emitted: list[processing.Emitted]) -> None:
        for item in emitted:
            log.info("emit %s key=%s %s", item.output, item.key, item.value.decode())
            self._produce(self.outputs[item.output], item.key.encode(), item.value, None)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        **extra: Any,
    ) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, **extra)
                return
            except BufferError:  # the local queue is full: let librdkafka send some
                self._producer.poll(0.05)

    def _write_changelogs(self, commands_emitted: bool) -> None:
        """Each table key changed by the batch, once; after the commands it emitted."""
        assert self._producer is not None
        seen_topic = self.changelogs[tables.SEEN]
        for partition, store in self.seen.items():
            pending = store.take_changed()
            if not pending:
                continue
            for key, value in pending[:-1]:
                self._produce(seen_topic, key, value, None, partition=partition)
            key, value = pending[-1]
            self._produce(
                seen_topic, key, value, None, partition=partition, on_delivery=self._seen_delivered
            )
        if commands_emitted and not self._flush():
            # stopping: the state must not reach the changelog before its commands, and the
            # offsets must not be committed without the state
            self._refuse_commits("stopped before the batch's state reached its changelogs")
            return
        # The rows before the state that counts them: the views show a state only once its rows
        # are read, so this order keeps that wait short.
        for name, by_partition in (
            (tables.REJECTIONS, self.rejections),
            (tables.PERFORMANCE, self.performance),
            (tables.MODEL_TYPES, self.states),
        ):
            topic = self.changelogs[name]
            for partition, table in by_partition.items():
                for key, value in table.take_changed():
                    self._produce(topic, key, value, None, partition=partition)
        self._producer.poll(0)

    def _seen_delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._on_delivery(error, message)
            return
        partition, offset = int(message.partition() or 0), int(message.offset() or 0)
        self.delivered_seen[partition] = max(self.delivered_seen.get(partition, -1), offset)

    def _flush(self) -> bool:
        """Wait until the broker has every message produced so far; False if stopping first
        (messages still queued: nothing may be committed, the next owner replays)."""
        assert self._producer is not None
        while (left := self._producer.flush(5.0)) > 0:
            if self._stopping.is_set():
                log.warning("stopping with %d messages not yet taken by the broker", left)
                return False
            log.warning("waiting for the broker to take %d messages", left)
        return True

    def _commit(self, only: set[tuple[str, int]] | None = None) -> None:
        """Flush, commit the consumed offsets, then checkpoint the local dedupe stores."""
        assert self._consumer is not None
        if self.commits_refused or not self._flush() or self.commits_refused:
            return  # (flushing runs the delivery callbacks: a failure refuses commits)
        # Only what changed since the last commit: an idle worker writes and commits nothing.
        due = {
            key: offset
            for key, offset in self.positions.items()
            if (only is None or key in only) and self.committed.get(key) != offset
        }
        self.last_commit = time.monotonic()
        if due:
            try:
                self._consumer.commit(
                    offsets=[TopicPartition(t, p, offset) for (t, p), offset in due.items()],
                    asynchronous=False,
                )
                self.committed.update(due)
            except KafkaException as exc:  # e.g. a rebalance is under way: the next owner replays
                log.warning("offset commit failed (%s); the work is replayed idempotently", exc)
                return
        # Only after a commit that held: a worker that lost its partitions (its commit fails)
        # must not checkpoint past changelog records that the new owner wrote meanwhile.
        for partition, offset in self.delivered_seen.items():
            store = self.seen.get(partition)
            if store is not None:
                store.set_checkpoint(offset + 1)
        self.delivered_seen.clear()

    def _maybe_check_schedule(self) -> None:
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
        commands = False
        for table in self.states.values():
            for model_type in list(table):
                emitted = processing.handle_schedule(
                    model_type,
                    table,
                    self.follower.views,
                    self.rules,
                    time.time(),
                    self.follower.caught_up,
                )
                self._send(emitted)
                commands |= bool(emitted)
        self._write_changelogs(commands)
