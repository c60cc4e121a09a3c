"""Follows registry-events from the beginning on every worker, keeping each model type's view."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped]
from pydantic import ValidationError

from bus.clients import make_admin
from contracts.events import RegistryEventOccurred
from streams.registry_view import ModelTypeView, apply_registry_event

log = logging.getLogger(__name__)


class RegistryFollower:
    """Reads every partition of registry-events without a consumer group (each worker needs all)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.views: dict[str, ModelTypeView] = {}
        self.events_seen = 0
        # True once everything on the topic when this worker started has been read: until then
        # a view may be stale (a candidate not seen yet), so the A/B test must not act on it.
        self.caught_up = False

    def apply(self, raw: bytes | None) -> None:
        try:
            event = RegistryEventOccurred.model_validate_json(raw or b"")
        except ValidationError as exc:
            log.warning("unreadable registry event on %s skipped: %s", self.topic, exc)
            return
        self.views[event.model_type] = apply_registry_event(self.views.get(event.model_type), event)
        self.events_seen += 1
        view = self.views[event.model_type]
        log.info(
            "registry event %s model_type=%s version=%s production=%s candidate=%s weights=%s",
            event.type.value, event.model_type, event.version, view.production, view.candidate,
            dict(view.weights),
        )

    def _partitions(self) -> set[int]:
        metadata = make_admin(self.bootstrap_servers).list_topics(self.topic, timeout=5.0)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return set()
        return set(topic.partitions)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions: set[int] | None = None
            while not partitions:
                partitions = await asyncio.to_thread(self._partitions)
                if not partitions:
                    log.info("waiting for topic %s to exist", self.topic)
                    await asyncio.sleep(1.0)
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            ends = await consumer.end_offsets(assigned)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        self.apply(message.value)
                if not self.caught_up:
                    positions = {tp: await consumer.position(tp) for tp in assigned}
                    if all(positions[tp] >= ends[tp] for tp in assigned):
                        self.caught_up = True
                        log.info("registry events caught up: %d events", self.events_seen)
        finally:
            await consumer.stop()
