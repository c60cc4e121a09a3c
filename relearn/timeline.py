"""Follows the loop's command and event topics and tells each step as one line of a timeline."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from bus.clients import make_consumer
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


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{v} {w:.0%}" for v, w in sorted(weights.items()) if w > 0) or "none"


def describe(event: BaseModel) -> str:
    """A one-line, human account of a loop event."""
    if isinstance(event, RetrainRequested):
        return (
            f"retrain command for {event.model_type} ({event.reason.value}, "
            f"{event.new_samples} new samples, baseline {event.baseline_version or 'none'})"
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
    """A background consumer that turns loop events into Steps on a queue."""

    def __init__(self, bootstrap_servers: str, topics: Topics) -> None:
        self._bootstrap = bootstrap_servers
        self._names = {topics.name(kind): kind for kind in _MODELS}
        self.steps: queue.Queue[Step] = queue.Queue()
        self.history: list[Step] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="timeline")

    def start(self) -> TimelineFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        consumer = make_consumer(
            self._bootstrap, f"timeline-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}
        )
        consumer.subscribe(list(self._names))
        try:
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                kind = self._names[message.topic()]
                try:
                    event = _MODELS[kind].model_validate_json(message.value())
                except ValidationError:
                    continue  # the services dead-letter malformed records; the story skips them
                step = Step(time.monotonic(), kind, event)
                self.history.append(step)
                self.steps.put(step)
        finally:
            consumer.close()

    def wait_for(self, predicate, timeout: float) -> Step | None:  # type: ignore[no-untyped-def]
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
