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
    # A team's own trainer (training/trainers, training/proof.py):
    TRAINER_FAILED = "trainer_failed"  # non-zero exit, or the plugin raised
    TRAINER_TIMEOUT = "trainer_timeout"  # its process group was killed
    PLUGIN_IMPORT_ERROR = "plugin_import_error"
    NO_OUTPUT = "no_output"  # nothing (or an empty file) at {output}
    NOT_ONNX = "not_onnx"  # unparseable, fails the checker, or onnxruntime cannot load it
    WRONG_SIGNATURE = "wrong_signature"  # not one float [N, F] input and one [N] / [N, 1] output
    NON_FINITE_OUTPUT = "non_finite_output"
    OUTPUT_OUT_OF_RANGE = "output_out_of_range"  # a probability outside [0, 1]
    BATCH_MISMATCH = "batch_mismatch"  # a row scored alone differs from the same row in a batch
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


class TrainerRejectedError(TrainingError):
    """A team's trainer or its file failed; the reason is one of the trainer codes above."""

    reason = RejectionReason.TRAINER_FAILED


class GateUnavailableError(TrainingError):
    """Production exists or may exist, but the gate could not compare (policy `reject`)."""

    reason = RejectionReason.GATE_UNAVAILABLE


class RegistryUnavailableError(TrainingError):
    """The registry did not answer; the gate retries, then its unavailable policy decides."""


class FaultInjectionRefusedError(TrainingError):
    """A fault-enabled trainer would act on a registry that serves real models: it must not start."""
