"""Follows the loop's command and event topics and tells each step as one line of a timeline."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from pydantic import BaseModel

from bus.records import Record
from bus.tail import TopicTail
from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryEventOccurred,
    RetrainRequested,
)
from contracts.topics import TopicName, Topics


@dataclass(frozen=True)
class Step:
    """One thing that happened in the loop, as the timeline shows it."""

    at: float  # time.monotonic() when seen
    kind: TopicName
    event: BaseModel

    def describe(self) -> str:
        return describe(self.event)


class CrossingHeld(BaseModel):
    """Not an event on the bus: streams held a threshold crossing (seen on its samples view)."""

    model_type: str
    new_samples: int
    held_crossings: int
    retrain_in_flight: str | None = None


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{v} {w:.0%}" for v, w in sorted(weights.items()) if w > 0) or "none"


def describe(event: BaseModel) -> str:
    """A one-line, human account of a loop event."""
    if isinstance(event, RetrainRequested):
        held = (
            f"; {event.held_crossings} more threshold crossings were held into it"
            if event.held_crossings
            else ""
        )
        return (
            f"retrain command for {event.model_type} ({event.reason.value}, "
            f"{event.new_samples} new samples, baseline {event.baseline_version or 'none'}{held})"
        )
    if isinstance(event, CrossingHeld):
        why = (
            f"retrain {event.retrain_in_flight[:8]} still in flight"
            if event.retrain_in_flight
            else "a candidate under test"
        )
        return (
            f"threshold crossed for {event.model_type} ({event.new_samples} new samples) - "
            f"held, no second command: {why}"
        )
    if isinstance(event, ModelDeployed):
        m = event.metrics
        fault = m.model_extra.get("fault_injected") if m.model_extra else None
        note = f", FAULT INJECTED {fault}" if fault else ""
        return (
            f"model trained for {event.model_type}: test loss {m.test_loss:.4f}, "
            f"{m.parameters} parameters, {m.train_samples} training samples, "
            f"sha256 {event.sha256[:12]}{note}"
        )
    if isinstance(event, RegistryCommandIssued):
        evidence = event.evidence or {}
        stats = ""
        if "p_value" in evidence:
            stats = f" (p={float(evidence['p_value']):.4f}"
            if "difference" in evidence:
                stats += f", difference {float(evidence['difference']):+.3f}"
            stats += ")"
        target = f" {event.version}" if event.version else ""
        return (
            f"{event.issued_by} decision: {event.type.value}{target} of {event.model_type}{stats}"
        )
    if isinstance(event, RegistryEventOccurred) and event.reason == "superseded":
        details = event.details or {}
        return (
            f"trainer: retrain {str(details.get('command_id'))[:8]} for {event.model_type} "
            f"superseded by {str(details.get('superseded_by'))[:8]} queued behind it - "
            "nothing trained, the newer one trains on the newest window"
        )
    if isinstance(event, RegistryEventOccurred):
        subject = f" {event.version}" if event.version else ""
        reason = f" - {event.reason}" if event.reason else ""
        return (
            f"registry: {event.type.value}{subject} ({event.model_type}); "
            f"traffic {_weights(event.weights)}{reason}"
        )
    return repr(event)


_MODELS: dict[TopicName, type[BaseModel]] = {
    TopicName.RETRAIN_COMMANDS: RetrainRequested,
    TopicName.MODEL_DEPLOYED: ModelDeployed,
    TopicName.REGISTRY_COMMANDS: RegistryCommandIssued,
    TopicName.REGISTRY_EVENTS: RegistryEventOccurred,
}


class TimelineFollower:
    """A tail of the loop's topics that turns their events into Steps on a queue.

    Given streams' URL and model types, it also watches their samples view, and tells a
    threshold crossing that streams held (one line per hold) - that never reaches the bus.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics,
        streams_url: str | None = None,
        model_types: tuple[str, ...] = (),
    ) -> None:
        self._names = {topics.name(kind): kind for kind in _MODELS}
        self.steps: queue.Queue[Step] = queue.Queue()
        self.history: list[Step] = []
        self._stop = threading.Event()
        # The services dead-letter malformed records; the story skips them.
        self._tail: TopicTail[BaseModel] = TopicTail(
            bootstrap_servers,
            list(self._names),
            name="timeline",
            on_record=self._on_record,
            decode=lambda topic, raw: _MODELS[self._names[topic]].model_validate_json(raw or b""),
        )
        self._streams_url = streams_url
        self._model_types = model_types
        self._holds = threading.Thread(target=self._watch_holds, daemon=True, name="holds")

    def start(self) -> TimelineFollower:
        self._tail.start()
        if self._streams_url and self._model_types:
            self._holds.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._tail.stop()
        self._tail.join(timeout=10)
        if self._holds.is_alive():
            self._holds.join(timeout=10)

    def _add(self, kind: TopicName, event: BaseModel) -> None:
        step = Step(time.monotonic(), kind, event)
        self.history.append(step)
        self.steps.put(step)

    def _watch_holds(self) -> None:
        holding = dict.fromkeys(self._model_types, False)
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.wait(0.5):
                for model_type in self._model_types:
                    try:
                        view = client.get(f"{self._streams_url}/samples/{model_type}").json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    held = int(view.get("held_crossings") or 0)
                    if held > 0 and not holding[model_type]:
                        self._add(
                            TopicName.RETRAIN_COMMANDS,
                            CrossingHeld(
                                model_type=model_type,
                                new_samples=int(view.get("new_samples") or 0),
                                held_crossings=held,
                                retrain_in_flight=view.get("retrain_in_flight"),
                            ),
                        )
                    holding[model_type] = held > 0

    def _on_record(self, record: Record[BaseModel]) -> None:
        self._add(self._names[record.topic], record.value)

    def wait_for(self, predicate: Callable[[BaseModel], bool], timeout: float) -> Step | None:
        """The first step (already seen or arriving within timeout) that satisfies predicate."""
        for step in list(self.history):
            if predicate(step.event):
                return step
        deadline = time.monotonic() + timeout
        seen = len(self.history)
        while time.monotonic() < deadline:
            time.sleep(0.1)
            for step in self.history[seen:]:
                if predicate(step.event):
                    return step
            seen = len(self.history)
        return None
