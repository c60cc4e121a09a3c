"""The tables' changelog topics: created once, restored from on assignment, written per batch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, KafkaError, Message

from bus.admin import ensure_topics
from streams import tables
from streams.sender import Sender
from streams.settings import StreamsSettings

log = logging.getLogger(__name__)


class Changelogs:
    """table name -> changelog topic, partitioned like the table's source topic."""

    def __init__(self, app_id: str, dedupe_window_seconds: int) -> None:
        self.dedupe_window_seconds = dedupe_window_seconds
        self.topics = {
            name: tables.changelog_topic(app_id, name)
            for name in (*tables.OUTCOME_TABLES, *tables.SAMPLE_TABLES)
        }

    def ensure(self, settings: StreamsSettings) -> None:
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
            for name, topic in self.topics.items()
        }
        ensure_topics(
            settings.bootstrap_servers,
            configs,
            settings.topic_partitions,
            settings.topic_replication,
        )

    def restore(
        self, restorer: Consumer, name: str, partition: int, store: tables.TableStore
    ) -> None:
        """Feed `store` its changelog partition from its checkpoint to the end."""
        end = tables.read_changelog(
            restorer,
            self.topics[name],
            partition,
            store.checkpoint,
            store.restore_batch,
            progress=store.set_checkpoint,
        )
        store.set_checkpoint(end)


ChangelogDelivery = Callable[[KafkaError | None, Message], None]


class ChangelogWriter:
    """Each table key a batch changed, once, after the commands the batch emitted."""

    def __init__(
        self,
        changelogs: Changelogs,
        sender: Sender,
        on_seen_delivered: ChangelogDelivery,
        refuse_commits: Callable[[str], None],
    ) -> None:
        self._topics = changelogs.topics
        self._sender = sender
        self._on_seen_delivered = on_seen_delivered
        self._refuse_commits = refuse_commits

    def write(
        self,
        seen: Mapping[int, tables.SeenEventIds],
        small: tuple[tuple[str, Mapping[int, tables.TableStore]], ...],
        commands_emitted: bool,
    ) -> None:
        """`small` in the order to write: the rows before the state that counts them (the views
        show a state only once its rows are read, so this order keeps that wait short)."""
        produce = self._sender.produce
        seen_topic = self._topics[tables.SEEN]
        for partition, store in seen.items():
            pending = store.take_changed()
            if not pending:
                continue
            for key, value in pending[:-1]:
                produce(seen_topic, key, value, None, partition=partition)
            key, value = pending[-1]
            # the last record's delivery report moves the store's checkpoint at the next commit
            produce(
                seen_topic,
                key,
                value,
                None,
                partition=partition,
                on_delivery=self._on_seen_delivered,
            )
        if commands_emitted and not self._sender.flush():
            # stopping: the state must not reach the changelog before its commands, and the
            # offsets must not be committed without the state
            self._refuse_commits("stopped before the batch's state reached its changelogs")
            return
        for name, by_partition in small:
            topic = self._topics[name]
            for partition, table in by_partition.items():
                for key, value in table.take_changed():
                    produce(topic, key, value, None, partition=partition)
        self._sender.poll()
