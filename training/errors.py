"""Why a retrain command did not end in a deployment: one root error, one stable code per cause."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class RejectionReason(StrEnum):
    """Stable codes carried in `deployment_rejected` events (details.reason) and log lines."""

    INVALID_COMMAND = "invalid_command"
    UNKNOWN_MODEL_TYPE = "unknown_model_type"
    TOO_FEW_SAMPLES = "too_few_samples"
    INVALID_DATA = "invalid_data"
    DIVERGED = "diverged"
    EXPORT_FAILED = "export_failed"
    PARITY_FAILED = "parity_failed"
    WORSE_THAN_PRODUCTION = "worse_than_production"
    GATE_UNAVAILABLE = "gate_unavailable"


class TrainingError(Exception):
    """Root of training's errors. `reason` is the stable code, the message the human detail."""

    reason: RejectionReason = RejectionReason.INVALID_COMMAND

    def __init__(
        self,
        detail: str,
        reason: RejectionReason | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        if reason is not None:
            self.reason = reason
        # JSON-ready facts for the rejection event's details (metrics, baseline, ...).
        self.context: dict[str, Any] = dict(context or {})

    @property
    def detail(self) -> str:
        return str(self)


class InvalidCommandError(TrainingError):
    reason = RejectionReason.INVALID_COMMAND


class UnknownModelTypeError(TrainingError):
    reason = RejectionReason.UNKNOWN_MODEL_TYPE


class TooFewSamplesError(TrainingError):
    reason = RejectionReason.TOO_FEW_SAMPLES


class InvalidDataError(TrainingError):
    reason = RejectionReason.INVALID_DATA


class TrainingDivergedError(TrainingError):
    reason = RejectionReason.DIVERGED


class ExportFailedError(TrainingError):
    reason = RejectionReason.EXPORT_FAILED


class ParityFailedError(ExportFailedError):
    reason = RejectionReason.PARITY_FAILED


class WorseThanProductionError(TrainingError):
    reason = RejectionReason.WORSE_THAN_PRODUCTION


class GateUnavailableError(TrainingError):
    """Production exists or may exist, but the gate could not compare (policy `reject`)."""

    reason = RejectionReason.GATE_UNAVAILABLE


class RegistryUnavailableError(TrainingError):
    """The registry did not answer; the gate retries, then its unavailable policy decides."""


class FaultInjectionRefusedError(TrainingError):
    """A fault-enabled trainer would act on a registry that serves real models: it must not start."""
