"""The events on relearn's topics, as frozen pydantic models named as facts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from contracts.serving import Status
from contracts.versions import Version

# The largest magnitude a prediction or feature may have: far beyond any real score or feature,
# and small enough that the A/B test's sums of fourth powers stay finite.
MAX_MAGNITUDE = 1e15
# A feature or a prediction: finite and within +-MAX_MAGNITUDE (checked in pydantic's core).
BoundedFloat = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]


# Bounds on the free-text fields of internal events: a record the broker cannot take back
# (1 MB) would stall whoever republishes it; anything longer is refused where it comes in.
MAX_NAME_LENGTH = 64  # model types and message ids; the registry's columns hold this many
ModelTypeName = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
MessageId = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
MAX_SUBJECT_ID_LENGTH = 256
ReasonText = Annotated[str, Field(max_length=1_000)]


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (RFC 3339)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC year
        raise ValueError("timestamp is out of range in UTC") from None


UtcDateTime = Annotated[datetime, AfterValidator(_aware_utc)]


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


class _External(BaseModel):
    """Events from outside relearn: unknown fields are rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _Internal(BaseModel):
    """Events between relearn's services: unknown fields are ignored (forward compatibility)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class OutcomeEvent(_External):
    """What a model predicted for a subject and what then happened (topic outcome-events).

    Its fields, and TrainingSampleForwarded's, are also checked by hand on the streams hot path
    (`contracts/fast_paths.py`): a field changed here must change there;
    tests/contracts/test_fast_paths.py fails until it does."""

    event_id: uuid.UUID
    model_type: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    model_version: Version
    subject_id: str = Field(min_length=1, max_length=MAX_SUBJECT_ID_LENGTH)
    features: list[BoundedFloat]
    prediction: BoundedFloat
    outcome_score: float = Field(ge=0.0, le=1.0)
    positive_outcome: bool
    occurred_at: UtcDateTime
    # When the prediction this outcome belongs to was served. Optional for ingestion, but only
    # outcomes that carry it enter the A/B test (by the ramp step live at that moment).
    served_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _served_before_it_occurred(self) -> OutcomeEvent:
        if self.served_at is not None and self.served_at > self.occurred_at:
            raise ValueError(
                f"served_at {self.served_at.isoformat()} is after "
                f"occurred_at {self.occurred_at.isoformat()}"
            )
        return self


class TrainingSampleForwarded(_Internal):
    """A valid, de-duplicated outcome, as the trainer reads it (topic training-samples)."""

    event_id: str
    model_type: ModelTypeName
    model_version: Version
    features: list[float]
    prediction: BoundedFloat
    outcome_score: float = Field(ge=0.0, le=1.0)
    positive_outcome: bool
    occurred_at: UtcDateTime
    served_at: UtcDateTime | None = None  # as on the outcome event: the A/B test's cohort key
    # The A/B test's unit: its variance bucket is a hash of this, salted by the experiment.
    subject_id: str | None = None

    @classmethod
    def from_outcome(cls, event: OutcomeEvent) -> TrainingSampleForwarded:
        return cls(**forwarded_fields(event, None))

    @staticmethod
    def json_from_outcome(event: OutcomeEvent, event_id: str | None = None) -> bytes:
        """`to_json(from_outcome(event))` in meaning, without building the model: the streams
        hot path forwards every valid event, and this is ~5x cheaper."""
        return forwarded_json(forwarded_fields(event, event_id))


def forwarded_json(fields: dict[str, Any]) -> bytes:
    """The JSON of a forwarded sample's fields (timestamps in UTC, written with `Z`)."""
    return orjson.dumps(fields, option=orjson.OPT_UTC_Z)


def forwarded_fields(event: OutcomeEvent, event_id: str | None) -> dict[str, Any]:
    """The forwarded sample's fields, spelled once for the model and for the orjson fast path
    (`contracts.fast_paths.forwardable_outcome` builds the same dict from the raw event)."""
    return {
        "event_id": event_id if event_id is not None else str(event.event_id),
        "model_type": event.model_type,
        "model_version": event.model_version,
        "features": event.features,
        "prediction": event.prediction,
        "outcome_score": event.outcome_score,
        "positive_outcome": event.positive_outcome,
        "occurred_at": event.occurred_at,
        "served_at": event.served_at,
        "subject_id": event.subject_id,
    }


class RetrainReason(StrEnum):
    SAMPLE_THRESHOLD = "sample_threshold"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class RetrainRequested(_Internal):
    """A command to train a new version of a model type (topic retrain-commands)."""

    command_id: MessageId = Field(default_factory=new_id)
    model_type: ModelTypeName
    reason: RetrainReason
    new_samples: int = 0
    requested_at: UtcDateTime = Field(default_factory=utc_now)
    baseline_version: str | None = None
    # Threshold crossings streams held (a retrain in flight, a candidate under test) beyond the
    # one this command answers: the samples are all in its window, so none is lost.
    held_crossings: int = 0


class TrainingMetrics(_Internal):
    model_config = ConfigDict(frozen=True, extra="allow")

    train_loss: float
    val_loss: float
    test_loss: float
    early_stopping_epoch: int | None = None
    parameters: int
    train_samples: int
    val_samples: int
    test_samples: int


class Lineage(_Internal):
    topic: str
    offsets: dict[str, tuple[int, int]]
    seed: int
    package_version: str
    # A team's own trainer: {kind, argv | entry, script_file | module_file, sha256}; None: builtin
    trainer: dict[str, Any] | None = None


class ModelDeployed(_Internal):
    """A trained, validated ONNX model ready to be registered (topic model-deployed)."""

    deployment_id: MessageId = Field(default_factory=new_id)
    command_id: MessageId | None = None
    model_type: ModelTypeName
    artifact_uri: str = Field(max_length=4_096)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    onnx_opset: int
    input_name: str
    input_shape: list[int | None]
    output_name: str
    output_shape: list[int | None]
    metrics: TrainingMetrics
    baseline_metrics: dict[str, Any] | None = None
    lineage: Lineage | None = None
    trained_at: UtcDateTime = Field(default_factory=utc_now)
    version_hint: str | None = None


class RegistryCommandType(StrEnum):
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    SET_WEIGHTS = "set_weights"
    # The A/B test ended without a verdict: the candidate is archived, production unchanged.
    KEEP_PRODUCTION = "keep_production"


class RegistryCommandIssued(_Internal):
    """An action on the registry, automatic or by an operator (topic registry-commands)."""

    command_id: MessageId = Field(default_factory=new_id)
    type: RegistryCommandType
    model_type: ModelTypeName
    version: str | None = None
    weights: dict[str, float] | None = None
    reason: ReasonText = ""
    evidence: dict[str, Any] | None = None
    issued_by: str = "auto"
    # set_weights only: override the registry's traffic invariants (one candidate with traffic,
    # production never starved) - an operator's explicit choice, never an automatic one
    force: bool = False


class RegistryEventType(StrEnum):
    VERSION_REGISTERED = "version_registered"
    TRAFFIC_CHANGED = "traffic_changed"
    VERSION_PROMOTED = "version_promoted"
    VERSION_ROLLED_BACK = "version_rolled_back"
    VERSION_ARCHIVED = "version_archived"
    # The trainer's: a retrain command ended without a model (gate, training error, superseded).
    DEPLOYMENT_REJECTED = "deployment_rejected"
    # The registry's: it refused a model-deployed (unknown type, signature, artifact checks).
    ARTIFACT_REJECTED = "artifact_rejected"


# Events that answer a retrain command without a new version; they change no weight.
REJECTIONS = frozenset({RegistryEventType.DEPLOYMENT_REJECTED, RegistryEventType.ARTIFACT_REJECTED})


class RegistryEventOccurred(_Internal):
    """A change the registry made, with the full weight map after it (topic registry-events)."""

    event_id: str = Field(default_factory=new_id)
    type: RegistryEventType
    model_type: ModelTypeName
    version: str | None = None
    status: Status | None = None
    weights: dict[str, float] = Field(default_factory=dict)
    reason: str = ""
    occurred_at: UtcDateTime = Field(default_factory=utc_now)
    details: dict[str, Any] | None = None


def to_json(event: BaseModel) -> bytes:
    """Serialize an event for the wire (UTF-8 JSON)."""
    return event.model_dump_json().encode()
