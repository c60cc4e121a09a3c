"""Offsets and checkpoints: flush -> commit -> checkpoint, and never again once work may be lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.tables import TableStore

log = logging.getLogger(__name__)

Position = tuple[str, int]  # (topic, partition)


class Committer:
    """What the worker has processed (`positions`, written by the batch loop) and what it has
    committed. Set `commits_refused` once processed work may not be durable (a batch cut short,
    a delivery that failed): from then on nothing is committed, and the next owner replays."""

    def __init__(self, flush: Callable[[], bool], fail: Callable[[str], None]) -> None:
        self._flush = flush
        self._fail = fail  # a failed delivery stops the worker (and refuses commits)
        self.consumer: Consumer | None = None
        self.positions: dict[Position, int] = {}  # next offset to commit
        self.committed: dict[Position, int] = {}  # what the last commits sent
        # last changelog offset acknowledged since the last commit, by source partition, of
        # the stores that keep a local checkpoint
        self.delivered: dict[int, int] = {}
        self.commits_refused: str | None = None
        self.last_commit = time.monotonic()
        # what /metrics reads: commits made, the time of the last, refusals by reason
        self.commits_made = 0
        # the start until the first commit: a worker stuck from its start shows as not committing
        self.last_commit_time = time.time()
        self.refusals: dict[str, int] = {}

    def refuse(self, why: str, reason: str = "batch_failed") -> None:
        """`reason` is a `streams.metrics.RefusedReason` (a label, never the text of `why`)."""
        if self.commits_refused is None:
            log.error("no more offset commits from this worker (the next owner replays): %s", why)
            self.commits_refused = why
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def on_changelog_delivery(self, error: KafkaError | None, message: Message) -> None:
        """Delivery report of a checkpointed store's changelog record (the last of a batch)."""
        if error is not None:
            self._fail(f"delivery to {message.topic()} failed: {error}")
            return
        partition, offset = int(message.partition() or 0), int(message.offset() or 0)
        self.delivered[partition] = max(self.delivered.get(partition, -1), offset)

    def due(self, interval_seconds: float) -> bool:
        return time.monotonic() - self.last_commit >= interval_seconds

    def commit(self, stores: Mapping[int, TableStore], only: set[Position] | None = None) -> None:
        """Flush, commit the consumed offsets, then checkpoint `stores` (by source partition)."""
        assert self.consumer is not None
        if self.commits_refused:
            return
        if not self._flush():  # stopping with records the broker has not taken yet
            self.refusals["unflushed_on_stop"] = self.refusals.get("unflushed_on_stop", 0) + 1
            return
        if self.commits_refused:
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
                self.consumer.commit(
                    offsets=[TopicPartition(t, p, offset) for (t, p), offset in due.items()],
                    asynchronous=False,
                )
                self.committed.update(due)
                self.commits_made += 1
                self.last_commit_time = time.time()
            except KafkaException as exc:  # e.g. a rebalance is under way: the next owner replays
                log.warning("offset commit failed (%s); the work is replayed idempotently", exc)
                return
        # Only after a commit that held: a worker that lost its partitions (its commit fails)
        # must not checkpoint past changelog records that the new owner wrote meanwhile.
        for partition, offset in self.delivered.items():
            store = stores.get(partition)
            if store is not None:
                store.set_checkpoint(offset + 1)
        self.delivered.clear()

    def forget(self, positions: Iterable[Position], checkpointed: Iterable[int]) -> None:
        """Partitions this worker no longer owns: nothing of theirs is committed any more."""
        for position in positions:
            self.positions.pop(position, None)
            self.committed.pop(position, None)
        for partition in checkpointed:
            self.delivered.pop(partition, None)
