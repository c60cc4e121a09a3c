"""Follows registry-events from the beginning on every worker, keeping each model type's view."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from bus.tail import TopicTail
from contracts.events import RegistryEventOccurred
from streams.registry_view import ModelTypeView, apply_registry_event

log = logging.getLogger(__name__)


class RegistryFollower:
    """Reads every partition of registry-events without a consumer group (each worker needs all)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.views: dict[str, ModelTypeView] = {}
        self.events_seen = 0
        self._tail = TopicTail(bootstrap_servers, [topic], self._on_record, "registry-follower")

    @property
    def caught_up(self) -> bool:
        """True once everything on the topic when this worker started has been read: until
        then a view may be stale (a candidate not seen yet), so the A/B test must not act."""
        return self._tail.caught_up

    def start(self) -> None:
        self._tail.start()

    def stop(self) -> None:
        self._tail.stop()

    def _on_record(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.apply(value)

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
            event.type.value,
            event.model_type,
            event.version,
            view.production,
            view.candidate,
            dict(view.weights),
        )
