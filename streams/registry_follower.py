"""Follows registry-events and retrain-commands from the beginning on every worker, keeping each
model type's view: its versions, and its newest manual retrain."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bus.tail import TopicTail
from contracts.events import RegistryEventOccurred, RetrainReason, RetrainRequested
from streams.registry_view import ModelTypeView, apply_registry_event, apply_retrain_command

log = logging.getLogger(__name__)

Record = TypeVar("Record", bound=BaseModel)


class RegistryFollower:
    """Reads every partition of its topics without a consumer group (each worker needs all).

    Two tails, so that the registry view never waits for retrain-commands to exist; a lock
    keeps their read-modify-write of one model type's view from losing the other's change.
    """

    def __init__(self, bootstrap_servers: str, topic: str, retrain_topic: str) -> None:
        self.topic = topic
        self.retrain_topic = retrain_topic
        self.views: dict[str, ModelTypeView] = {}
        self.events_seen = 0
        self.manual_retrains_seen = 0
        self._lock = threading.Lock()
        self._tail: TopicTail[bytes] = TopicTail(
            bootstrap_servers, [topic], lambda _t, _k, v: self.apply(v), "registry-follower"
        )
        self._retrain_tail: TopicTail[bytes] = TopicTail(
            bootstrap_servers,
            [retrain_topic],
            lambda _t, _k, v: self.apply_retrain_command(v),
            "manual-retrain-follower",
        )

    @property
    def caught_up(self) -> bool:
        """True once everything on registry-events when this worker started has been read: until
        then a view may be stale (a candidate not seen yet), so the A/B test must not act."""
        return self._tail.caught_up

    @property
    def nothing_to_follow(self) -> bool:
        """True while registry-events does not exist: no registry event was ever published."""
        return self._tail.topics_missing

    def start(self) -> None:
        self._tail.start()
        self._retrain_tail.start()

    def stop(self) -> None:
        self._tail.stop()
        self._retrain_tail.stop()

    def apply_retrain_command(self, raw: bytes | None) -> None:
        command = _read(RetrainRequested, raw, self.retrain_topic)
        if command is None:
            return
        with self._lock:
            before = self.views.get(command.model_type)
            view = apply_retrain_command(before, command, datetime.now(UTC))
            if view is None or view is before:
                if command.reason is RetrainReason.MANUAL:
                    log.warning(
                        "manual retrain model_type=%s requested_at=%s ignored: not newer than "
                        "the one known, or dated in the future",
                        command.model_type,
                        command.requested_at.isoformat(),
                    )
                return
            self.views[command.model_type] = view
            self.manual_retrains_seen += 1
        log.info(
            "manual retrain model_type=%s requested_at=%s: its counter starts again",
            command.model_type,
            command.requested_at.isoformat(),
        )

    def apply(self, raw: bytes | None) -> None:
        event = _read(RegistryEventOccurred, raw, self.topic)
        if event is None:
            return
        with self._lock:
            view = apply_registry_event(self.views.get(event.model_type), event)
            self.views[event.model_type] = view
            self.events_seen += 1
        log.info(
            "registry event %s model_type=%s version=%s production=%s candidate=%s weights=%s",
            event.type.value,
            event.model_type,
            event.version,
            view.production,
            view.candidate,
            dict(view.weights),
        )


def _read(model: type[Record], raw: bytes | None, topic: str) -> Record | None:
    """The record, or None (logged and skipped) when it does not validate: one unreadable record
    must not stop a follower."""
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as exc:
        log.warning("unreadable %s on %s skipped: %s", model.__name__, topic, exc)
        return None
