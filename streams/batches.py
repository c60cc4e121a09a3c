"""The batch loop's body: one batch of consumed messages through `streams.processing`, its
forwards, commands and dead letters produced, then its table changes written to the changelogs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message

from contracts.events import RetrainReason
from contracts.model_types import ModelTypeCatalog
from contracts.topics import Topics
from streams import processing, rules
from streams.changelog import ChangelogWriter
from streams.committer import Committer
from streams.metrics import BatchTally, StreamsMetrics
from streams.partitions import OwnedTables
from streams.processing import SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, Output
from streams.registry_follower import RegistryFollower
from streams.sender import Sender

log = logging.getLogger(__name__)

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


def _add(counts: dict[str, int], label: str) -> None:
    counts[label] = counts.get(label, 0) + 1


def next_batch(consumer: Consumer) -> list[Message]:
    """What is fetched already, or else the next message as soon as it comes (50 ms at most)."""
    messages = consumer.consume(MAX_BATCH, timeout=0)
    if messages:
        return messages
    first = consumer.poll(0.05)  # waits for the next message without batching delay
    if first is None:
        return []
    return [first, *consumer.consume(MAX_BATCH - 1, timeout=0)]


class BatchProcessor:
    """Per batch: outcome events validated, de-duplicated and forwarded; training samples
    counted into the model-type state and daily performance; the positions moved on; then
    the changed table keys written once. Also the schedule trigger, between batches."""

    def __init__(
        self,
        topics: Topics,
        catalog: ModelTypeCatalog,
        stream_rules: processing.StreamRules,
        follower: RegistryFollower,
        owned: OwnedTables,
        committer: Committer,
        sender: Sender,
        changelogs: ChangelogWriter,
        metrics: StreamsMetrics | None = None,
    ) -> None:
        self.topics = topics
        self.catalog = catalog
        self.rules = stream_rules
        self.follower = follower
        self.outputs = {
            Output.RETRAIN: topics.retrain_commands,
            Output.REGISTRY: topics.registry_commands,
        }
        self._owned = owned
        # the owned tables' dicts (never replaced) and the positions, bound once for the hot path
        self._seen = owned.seen
        self._rejections = owned.rejections
        self._states = owned.states
        self._performance = owned.performance
        self._positions = committer.positions
        self._sender = sender
        self._produce = sender.produce
        self._changelogs = changelogs
        self._metrics = metrics  # None: nothing counted (RELEARN_STREAMS_METRICS=false)
        self.events_processed = 0
        # (record millis, batch clock, arrival) of the last outcome event: see _arrival
        self._arrivals: tuple[int | None, datetime | None, datetime] = (
            None,
            None,
            datetime.now(UTC),
        )

    def process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        now = datetime.now(UTC)
        clock = time.time()
        commands = False
        outcome_topic = self.topics.outcome_events
        seen, states, positions = self._seen, self._states, self._positions
        # the batch's counts, added to the metrics once at its end (none when they are off)
        tally = BatchTally() if self._metrics is not None else None
        processed = outcomes = 0
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            topic = message.topic() or ""
            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
            if topic == outcome_topic:
                if partition not in seen:  # revoked while the batch was fetched
                    continue
                self._on_outcome(message, partition, offset, now, tally)
                outcomes += 1
            else:
                if partition not in states:
                    continue
                commands |= self._on_sample(message, partition, clock)
            positions[(topic, partition)] = offset + 1
            processed += 1
        self.events_processed += processed
        self.write_changelogs(commands)
        if tally is not None and self._metrics is not None:
            tally.outcomes, tally.samples = outcomes, processed - outcomes
            self._metrics.batch_done(
                tally,
                time.perf_counter() - started,
                outcome_topic,
                self.topics.training_samples,
            )

    def write_changelogs(self, commands_emitted: bool) -> None:
        self._changelogs.write(self._seen, self._owned.small(), commands_emitted)

    def _on_outcome(
        self,
        message: Message,
        partition: int,
        offset: int,
        now: datetime,
        tally: BatchTally | None,
    ) -> None:
        result = processing.handle_outcome(
            message.value(),
            partition,
            offset,
            self._seen[partition],
            self._rejections[partition],
            self.catalog,
            self._arrival(message, now),
        )
        if result.rejected is not None:
            if tally is not None:
                _add(tally.dead_letters, result.rejected.reason.value)
            log.warning(
                "rejected topic=%s partition=%s offset=%s reason=%s detail=%s",
                message.topic(),
                partition,
                offset,
                result.rejected.reason.value,
                result.rejected.detail,
            )
            self._sender.dead_letter(
                self.topics.outcome_events_dlq,
                message,
                result.rejected.reason.value,
                result.rejected.detail,
            )
        elif result.forward is not None:
            if tally is not None:  # the common case, counted inline
                forwarded, model_type = tally.forwarded, result.model_type or ""
                forwarded[model_type] = forwarded.get(model_type, 0) + 1
            self._produce(
                self.topics.training_samples,
                (result.model_type or "").encode(),
                result.forward,
                [
                    (SOURCE_PARTITION_HEADER, str(partition).encode()),
                    (SOURCE_OFFSET_HEADER, str(offset).encode()),
                ],
            )
        elif result.duplicate and tally is not None:
            _add(tally.duplicates, result.model_type or "")

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
                self._states[partition],
                self._performance[partition],
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
            self._sender.dead_letter(self.topics.internal_dlq, message, "schema", str(exc))
            return False
        if emitted:
            self._send(emitted, _record_millis(message))
        return bool(emitted)

    def _send(self, emitted: list[processing.Emitted], crossing_millis: int | None = None) -> None:
        """The commands of a sample or of the schedule; `crossing_millis` is the record time of
        the sample that crossed the threshold (the trigger latency runs from it)."""
        for item in emitted:
            log.info("emit %s key=%s %s", item.output, item.key, item.value.decode())
            topic = self.outputs[item.output]
            if self._metrics is None:
                self._produce(topic, item.key.encode(), item.value, None)
            else:
                on_delivery = self._counted_delivery(item, crossing_millis)
                self._produce(topic, item.key.encode(), item.value, None, on_delivery=on_delivery)

    def _counted_delivery(
        self, item: processing.Emitted, crossing_millis: int | None
    ) -> Callable[[KafkaError | None, Message], None]:
        """The delivery report of one command: the sender's (a failure refuses commits), then
        the command counted once the broker has it (commands are rare: parsed here)."""
        metrics, report = self._metrics, self._sender.on_delivery
        assert metrics is not None
        command = orjson.loads(item.value)
        model_type = str(command.get("model_type") or item.key)

        def delivered(error: KafkaError | None, message: Message) -> None:
            report(error, message)
            if error is not None:
                return
            if item.output == processing.Output.RETRAIN:
                reason = str(command.get("reason"))
                latency = None
                if reason == RetrainReason.SAMPLE_THRESHOLD and crossing_millis is not None:
                    latency = time.time() - crossing_millis / 1000
                metrics.retrain_delivered(model_type, reason, latency)
            else:
                metrics.registry_command_delivered(model_type, str(command.get("type")))

        return delivered

    def check_schedule(self) -> None:
        """The schedule trigger over every owned model-type state."""
        commands = False
        for table in self._states.values():
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
        self.write_changelogs(commands)
