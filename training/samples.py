"""Reads a model type's samples from training-samples: a time window, or exact offset ranges."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from bus.clients import ConsumerOptions, make_consumer
from contracts.model_types import ModelTypeSpec
from training.dataset import Dataset, DatasetBuilder

log = logging.getLogger(__name__)

OffsetRanges = dict[int, tuple[int, int]]  # partition -> [start, end)


class SamplesUnavailableError(Exception):
    """The broker did not deliver a requested range (retention, or a timeout): transient or
    operational, never a verdict on the command, so the worker stops instead of rejecting it."""


@dataclass(frozen=True)
class SampleRead:
    dataset: Dataset
    topic: str
    offsets: OffsetRanges
    messages: int
    other_model_types: int

    def lineage_offsets(self) -> dict[str, tuple[int, int]]:
        return {str(p): r for p, r in sorted(self.offsets.items())}


class SampleSource(Protocol):
    def read_window(self, spec: ModelTypeSpec, since: datetime) -> SampleRead: ...

    def read_offsets(
        self, spec: ModelTypeSpec, offsets: Mapping[int, tuple[int, int]]
    ) -> SampleRead: ...


class KafkaSampleReader:
    """Assigns the partitions directly (no group), reads [start, end) of each, then closes.

    `max_records` bounds a window read: at most that many of the newest records of each
    partition (a partition holds one model type's samples, since they are keyed by type, or
    those of the few types that share it). Training time grows with the samples, so this keeps
    a busy type's retrain quick; the lineage records the offsets actually read.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        timeout: float = 60.0,
        max_records: int | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout = timeout
        self.max_records = max_records

    def _consumer(self) -> Consumer:
        return make_consumer(
            self.bootstrap_servers,
            f"relearn-trainer-reader-{uuid.uuid4().hex[:8]}",  # never joins: assign() only
            ConsumerOptions(auto_commit=False, partition_eof=True),
        )

    def read_window(self, spec: ModelTypeSpec, since: datetime) -> SampleRead:
        """The type's samples with a record timestamp at or after `since`, up to the end now
        (the newest `max_records` of each partition at most)."""
        consumer = self._consumer()
        try:
            metadata = consumer.list_topics(self.topic, timeout=self.timeout)
            topic = metadata.topics.get(self.topic)
            if topic is None or topic.error is not None:
                raise SamplesUnavailableError(
                    f"topic {self.topic} not available: {topic and topic.error}"
                )
            partitions = sorted(topic.partitions)
            stamp = int(since.timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(self.topic, p, stamp) for p in partitions], timeout=self.timeout
            )
            ranges: OffsetRanges = {}
            for tp in found:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, tp.partition), timeout=self.timeout
                )
                # -1: no record at or after the timestamp, so the window is empty in this partition.
                start = high if tp.offset < 0 else max(tp.offset, low)
                if self.max_records is not None:
                    start = max(start, high - self.max_records)
                ranges[tp.partition] = (start, high)
            return self._read(consumer, spec, ranges)
        finally:
            consumer.close()

    def read_offsets(
        self, spec: ModelTypeSpec, offsets: Mapping[int, tuple[int, int]]
    ) -> SampleRead:
        """Exactly the recorded ranges (a lineage); fails if retention has removed any of them."""
        consumer = self._consumer()
        try:
            for partition, (start, end) in offsets.items():
                if start >= end:
                    continue
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=self.timeout
                )
                if start < low or end > high:
                    raise SamplesUnavailableError(
                        f"{self.topic}[{partition}] holds [{low}, {high}), "
                        f"lineage needs [{start}, {end})"
                    )
            return self._read(consumer, spec, dict(offsets))
        finally:
            consumer.close()

    def _read(self, consumer: Consumer, spec: ModelTypeSpec, ranges: OffsetRanges) -> SampleRead:
        builder = DatasetBuilder(spec)
        pending = {p: r for p, r in ranges.items() if r[0] < r[1]}
        messages = other = 0
        if pending:
            consumer.assign([TopicPartition(self.topic, p, r[0]) for p, r in pending.items()])
        deadline = time.monotonic() + self.timeout
        while pending:
            if time.monotonic() > deadline:
                raise SamplesUnavailableError(
                    f"timed out reading {self.topic}; still missing partitions {sorted(pending)}"
                )
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                partition, offset = _position(message)
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # End of what exists; a range ending in transaction markers ends here too.
                        if partition in pending and offset >= pending[partition][1]:
                            pending.pop(partition)
                        continue
                    raise KafkaException(error)
                if partition not in pending:
                    continue
                end = pending[partition][1]
                if offset >= end:
                    pending.pop(partition)
                    continue
                messages += 1
                if not _add_sample(builder, spec, message.value()):
                    other += 1
                if offset >= end - 1:
                    pending.pop(partition)
        dataset = builder.build()
        log.info(
            "read %s model_type=%s messages=%d samples=%d duplicates=%d malformed=%d ranges=%s",
            self.topic,
            spec.name,
            messages,
            len(dataset),
            dataset.duplicates,
            dataset.skipped,
            ranges,
        )
        return SampleRead(dataset, self.topic, dict(ranges), messages, other)


def _position(message: Message) -> tuple[int, int]:
    """(partition, offset) of a record or partition-EOF event; -1 where the client has none."""
    partition, offset = message.partition(), message.offset()
    return (-1 if partition is None else partition), (-1 if offset is None else offset)


def _add_sample(builder: DatasetBuilder, spec: ModelTypeSpec, value: bytes | None) -> bool:
    """Feed one record to the builder; False when it belongs to another model type."""
    try:
        sample = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        builder.skip()
        return True
    if not isinstance(sample, dict):
        builder.skip()
        return True
    if sample.get("model_type") != spec.name:
        return False
    event_id = sample.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        builder.skip()
        return True
    builder.add(
        event_id,
        sample.get("features"),  # type: ignore[arg-type]
        sample.get("outcome_score"),  # type: ignore[arg-type]
        sample.get("positive_outcome"),  # type: ignore[arg-type]
        sample.get("occurred_at"),
    )
    return True
