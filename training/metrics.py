"""The trainer's Prometheus metrics (docs/metrics.md), counted once per settled command."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from training.errors import RejectionReason

# Model types outside the catalogue (an unreadable command's key, an unknown type) share one
# label value: a label holds only bounded values, never what a producer happened to send.
UNKNOWN_MODEL_TYPE = "unknown"

PHASE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

# The pipeline's own timing names -> the catalogue's phases (a team's trainer times its script
# or plugin, not `train`; the artifact's storing is part of publishing it).
PHASE_OF = {
    "read": "read",
    "train": "train",
    "write_data": "train",
    "script": "train",
    "plugin": "train",
    "export_validate": "proof",
    "prove": "proof",
    "gate": "gate",
    "store": "publish",
    "publish": "publish",
}
PHASES = ("read", "train", "proof", "gate", "publish")


class CommandStatus(StrEnum):
    """How a retrain command finished, as `relearn_trainer_commands_total{status}` counts it."""

    PUBLISHED = "published"  # model-deployed sent
    REJECTED = "rejected"  # deployment_rejected sent, with a RejectionReason
    SUPERSEDED = "superseded"  # a newer command for the type was queued: nothing trained
    DUPLICATE = "duplicate"  # already settled (the ledger): the recorded answer sent again


class TrainerMetrics:
    """One collector registry per worker (tests run several in a process)."""

    def __init__(self, model_types: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.commands = Counter(
            "relearn_trainer_commands_total",
            "Retrain commands finished, by status",
            ["model_type", "status"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "relearn_trainer_rejections_total",
            "Retrain commands rejected, by reason",
            ["model_type", "reason"],
            registry=self.registry,
        )
        self.consecutive_rejections = Gauge(
            "relearn_trainer_consecutive_rejections",
            "Rejections in a row since this worker last published for the type",
            ["model_type"],
            registry=self.registry,
        )
        self.phase_duration = Histogram(
            "relearn_trainer_phase_duration_seconds",
            "One command's phase: read, train, proof, gate, publish",
            ["model_type", "phase"],
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self.samples_read = Counter(
            "relearn_trainer_samples_read_total",
            "Training samples read from training-samples",
            ["model_type"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "relearn_trainer_last_success_timestamp_seconds",
            "Unix time of the last model-deployed this worker published",
            ["model_type"],
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "relearn_trainer_in_progress",
            "1 while a command is being trained, else 0",
            registry=self.registry,
        )
        self._known = set(model_types)
        for model_type in sorted(self._known):
            # Created at 0 so that increase() sees the first one (docs/metrics.md).
            for status in CommandStatus:
                self.commands.labels(model_type, status.value)
            for reason in RejectionReason:
                self.rejections.labels(model_type, reason.value)
            self.consecutive_rejections.labels(model_type).set(0)
            self.samples_read.labels(model_type)

    def label_of(self, model_type: str) -> str:
        return model_type if model_type in self._known else UNKNOWN_MODEL_TYPE

    def settled(
        self,
        model_type: str,
        status: CommandStatus,
        reason: str | None = None,
        samples: int = 0,
        timings: Mapping[str, float] | None = None,
    ) -> None:
        """Count one command's outcome once it is published (the loop commits it next)."""
        label = self.label_of(model_type)
        self.commands.labels(label, status.value).inc()
        if samples:
            self.samples_read.labels(label).inc(samples)
        phases: dict[str, float] = {}
        for name, seconds in (timings or {}).items():
            phase = PHASE_OF.get(name)
            if phase is not None:
                phases[phase] = phases.get(phase, 0.0) + seconds
        for phase, seconds in phases.items():
            self.phase_duration.labels(label, phase).observe(seconds)
        if status is CommandStatus.PUBLISHED:
            self.consecutive_rejections.labels(label).set(0)
            self.last_success.labels(label).set(time.time())
        elif status is CommandStatus.REJECTED:
            self.rejections.labels(label, reason or RejectionReason.INVALID_COMMAND.value).inc()
            self.consecutive_rejections.labels(label).inc()
