"""Rebalances: the tables of the partitions this worker owns, restored on assign, dropped on
revoke (after a commit) or loss (without one)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from contracts.topics import Topics
from streams import tables, values
from streams.changelog import Changelogs
from streams.committer import Committer
from streams.metrics import RebalanceStatus, StreamsMetrics

log = logging.getLogger(__name__)


class OwnedTables:
    """The tables of the partitions this worker owns, by source partition: the dedupe window
    and rejection counts of outcome-events partitions, the model-type state and daily
    performance of training-samples partitions."""

    def __init__(self, changelogs: Changelogs, data_dir: Path) -> None:
        self._changelogs = changelogs
        self._data_dir = data_dir
        self.seen: dict[int, tables.SeenEventIds] = {}
        self.rejections: dict[int, tables.ChangelogTable[values.RejectionCount]] = {}
        self.states: dict[int, tables.ChangelogTable[Any]] = {}
        self.performance: dict[int, tables.ChangelogTable[values.DayPerformance]] = {}

    def small(self) -> tuple[tuple[str, Mapping[int, tables.ChangelogTable[Any]]], ...]:
        """The in-memory tables, in the order their changelogs are written."""
        return (
            (tables.REJECTIONS, self.rejections),
            (tables.PERFORMANCE, self.performance),
            (tables.MODEL_TYPES, self.states),
        )

    def restore_outcome_partition(self, restorer: Consumer, partition: int) -> None:
        store = tables.SeenEventIds(
            self._data_dir / f"dedupe-{partition}", self._changelogs.dedupe_window_seconds
        )
        self._changelogs.restore(restorer, tables.SEEN, partition, store)
        self.seen[partition] = store
        self.rejections[partition] = self._restore_small(restorer, tables.REJECTIONS, partition)

    def restore_sample_partition(self, restorer: Consumer, partition: int) -> None:
        self.states[partition] = self._restore_small(restorer, tables.MODEL_TYPES, partition)
        self.performance[partition] = self._restore_small(restorer, tables.PERFORMANCE, partition)

    def _restore_small(
        self, restorer: Consumer, name: str, partition: int
    ) -> tables.ChangelogTable[Any]:
        table = tables.ChangelogTable.of(name)
        self._changelogs.restore(restorer, name, partition, table)
        return table

    def drop_outcome_partition(self, partition: int) -> None:
        store = self.seen.pop(partition, None)
        if store is not None:
            store.close()
        self.rejections.pop(partition, None)

    def drop_sample_partition(self, partition: int) -> None:
        self.states.pop(partition, None)
        self.performance.pop(partition, None)

    def close(self) -> None:
        for store in self.seen.values():
            store.close()


class Rebalancer:
    """The consumer's on_assign/on_revoke/on_lost: runs inside `consume`/`poll`, between
    batches, so everything processed so far is on its way to the broker."""

    def __init__(self, topics: Topics, owned: OwnedTables, committer: Committer) -> None:
        self._outcome_topic = topics.outcome_events
        self._sample_topic = topics.training_samples
        self._owned = owned
        self._committer = committer
        self.restorer: Consumer | None = None
        self.metrics: StreamsMetrics | None = None
        # what /readyz reads: a first assignment received, a restore under way
        self.assignments = 0
        self.restoring = False

    def assigned(self) -> dict[str, list[int]]:
        return {
            self._outcome_topic: sorted(self._owned.seen),
            self._sample_topic: sorted(self._owned.states),
        }

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self.restorer is not None
        started = time.monotonic()
        self.restoring = True
        try:
            for tp in partitions:
                partition_started = time.monotonic()
                if tp.topic == self._outcome_topic:
                    self._owned.restore_outcome_partition(self.restorer, tp.partition)
                elif tp.topic == self._sample_topic:
                    self._owned.restore_sample_partition(self.restorer, tp.partition)
                else:
                    continue
                if self.metrics is not None:
                    self.metrics.restored(tp.topic, time.monotonic() - partition_started)
        finally:
            self.restoring = False
        self.assignments += 1
        if self.metrics is not None:
            self.metrics.rebalanced(RebalanceStatus.ASSIGNED)
        log.info(
            "assigned %s, tables restored in %.2f s",
            [(tp.topic, tp.partition) for tp in partitions],
            time.monotonic() - started,
        )

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Between batches: everything processed is on its way; make it durable, commit it.
        self._committer.commit(
            self._owned.seen, only={(tp.topic, tp.partition) for tp in partitions}
        )
        self._drop(partitions)
        if self.metrics is not None:
            self.metrics.rebalanced(RebalanceStatus.REVOKED)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "partitions lost (another worker owns them now): %s",
            [(tp.topic, tp.partition) for tp in partitions],
        )
        self._drop(partitions)
        if self.metrics is not None:
            self.metrics.rebalanced(RebalanceStatus.LOST)

    def _drop(self, partitions: list[TopicPartition]) -> None:
        outcome = [tp.partition for tp in partitions if tp.topic == self._outcome_topic]
        self._committer.forget([(tp.topic, tp.partition) for tp in partitions], outcome)
        for tp in partitions:
            if tp.topic == self._outcome_topic:
                self._owned.drop_outcome_partition(tp.partition)
            elif tp.topic == self._sample_topic:
                self._owned.drop_sample_partition(tp.partition)
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])
