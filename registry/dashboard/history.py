"""A bounded in-memory history per model type, built from registry-events and retrain-commands (pure).

The dashboard's traffic step chart, its retrain list and its rejection list come from here.
Records are applied in topic order; a record at or below the last offset applied for its
partition is a replay and is skipped, so re-reading a topic never counts anything twice.
Memory is bounded: at most `max_items` entries per list and `max_model_types` model types.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.events import REJECTIONS

# The trainer's deployment_rejected and the registry's artifact_rejected.
REJECTED = frozenset(t.value for t in REJECTIONS)
DEFAULT_MAX_ITEMS = 500
DEFAULT_MAX_MODEL_TYPES = 64


@dataclass
class ModelTypeHistory:
    """What one model type went through: weight steps, every event, retrains and rejections."""

    max_items: int
    steps: deque[dict[str, Any]] = field(init=False)
    events: deque[dict[str, Any]] = field(init=False)
    retrain_commands: deque[dict[str, Any]] = field(init=False)
    rejections: deque[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = deque(maxlen=self.max_items)
        self.events = deque(maxlen=self.max_items)
        self.retrain_commands = deque(maxlen=self.max_items)
        self.rejections = deque(maxlen=self.max_items)

    def to_dict(self, model_type: str) -> dict[str, Any]:
        return {
            "model_type": model_type,
            "steps": list(self.steps),
            "events": list(self.events),
            "retrain_commands": list(self.retrain_commands),
            "rejections": list(self.rejections),
        }


def registry_event_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a registry event the page shows (details flattened for rejections)."""
    details = event.get("details") or {}
    return {
        "event_id": event.get("event_id"),
        "type": event.get("type"),
        "version": event.get("version"),
        "status": event.get("status"),
        "weights": weights if isinstance(weights := event.get("weights"), dict) else {},
        "reason": event.get("reason") or "",
        "occurred_at": event.get("occurred_at"),
        "details": details if isinstance(details, dict) else {},
    }


def rejection_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """A deployment rejection, from the trainer (command_id) or the registry (deployment_id)."""
    details = event.get("details") or {}
    if not isinstance(details, dict):
        details = {}
    return {
        "event_id": event.get("event_id"),
        "occurred_at": event.get("occurred_at"),
        "reason": event.get("reason") or details.get("reason") or "",
        "detail": details.get("detail") or "",
        "command_id": details.get("command_id"),
        "deployment_id": details.get("deployment_id"),
        "source": "registry" if "deployment_id" in details else "trainer",
    }


def retrain_entry(command: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "command_id": command.get("command_id"),
        "reason": command.get("reason"),
        "new_samples": command.get("new_samples"),
        "requested_at": command.get("requested_at"),
        "baseline_version": command.get("baseline_version"),
    }


class DashboardHistory:
    """Thread-safe: the follower thread applies records, request handlers read snapshots."""

    def __init__(
        self,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_model_types: int = DEFAULT_MAX_MODEL_TYPES,
    ) -> None:
        self._max_items = max_items
        self._max_model_types = max_model_types
        self._by_type: dict[str, ModelTypeHistory] = {}
        self._applied: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self.records_applied = 0

    def on_weights_event(self, listener: Callable[[str], None]) -> None:
        """Call `listener(model_type)` for every registry event that may change weights (the
        registry's route cache forgets that model type: another instance may have made it)."""
        self._listeners.append(listener)

    def _history_of(self, model_type: str) -> ModelTypeHistory | None:
        history = self._by_type.get(model_type)
        if history is None:
            if len(self._by_type) >= self._max_model_types:
                return None
            history = self._by_type[model_type] = ModelTypeHistory(self._max_items)
        return history

    def _is_replay(self, source: tuple[str, int], offset: int) -> bool:
        last = self._applied.get(source)
        if last is not None and offset <= last:
            return True
        self._applied[source] = offset
        return False

    def apply_registry_event(
        self, event: Mapping[str, Any], source: tuple[str, int] = ("", 0), offset: int = -1
    ) -> bool:
        """Apply one registry-events value; False when it was a replay or not usable."""
        model_type = event.get("model_type")
        if not isinstance(model_type, str) or not event.get("type"):
            return False
        if event.get("type") not in REJECTED:
            for listener in self._listeners:
                listener(model_type)
        with self._lock:
            if offset >= 0 and self._is_replay(source, offset):
                return False
            history = self._history_of(model_type)
            if history is None:
                return False
            entry = registry_event_entry(event)
            history.events.append(entry)
            if entry["type"] in REJECTED:
                # A rejection changes no traffic; the trainer's carries no weight map at all.
                history.rejections.append(rejection_entry(event))
            else:
                history.steps.append(entry)
            self.records_applied += 1
            return True

    def apply_retrain_command(
        self, command: Mapping[str, Any], source: tuple[str, int] = ("", 0), offset: int = -1
    ) -> bool:
        """Apply one retrain-commands value; False when it was a replay or not usable."""
        model_type = command.get("model_type")
        if not isinstance(model_type, str):
            return False
        with self._lock:
            if offset >= 0 and self._is_replay(source, offset):
                return False
            history = self._history_of(model_type)
            if history is None:
                return False
            history.retrain_commands.append(retrain_entry(command))
            self.records_applied += 1
            return True

    def snapshot(self, model_type: str) -> dict[str, Any]:
        with self._lock:
            history = self._by_type.get(model_type)
            if history is None:
                return ModelTypeHistory(0).to_dict(model_type)
            return history.to_dict(model_type)

    def model_types(self) -> list[str]:
        with self._lock:
            return sorted(self._by_type)
