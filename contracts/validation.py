"""Validation of outcome events from outside: every rule of the contract, each with a stable reason code."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from contracts.events import MAX_MAGNITUDE, OutcomeEvent
from contracts.model_types import ModelTypeCatalog

MAX_MESSAGE_BYTES = 64 * 1024
MAX_CLOCK_SKEW = timedelta(minutes=5)


class RejectReason(StrEnum):
    """Stable codes carried in the dead-letter header `error.reason`."""

    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    UNKNOWN_MODEL_TYPE = "unknown_model_type"
    FEATURE_COUNT = "feature_count"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_LARGE = "too_large"


class ContractError(Exception):
    """Root of the contracts package's errors."""


class OutcomeRejected(ContractError):
    """An outcome event that can never be accepted; `reason` is the stable code."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    location = ".".join(str(part) for part in error.get("loc", ())) or "<root>"
    return f"{location}: {error.get('msg', 'invalid')}"


def _out_of_range(error: Any) -> bool:
    """A feature or the prediction beyond +-MAX_MAGNITUDE (not a score outside [0, 1])."""
    return error["type"] in ("greater_than_equal", "less_than_equal") and error["loc"][:1] in (
        ("features",),
        ("prediction",),
    )


def parse_outcome(raw: bytes | str | None) -> OutcomeEvent:
    """Size check and schema parse; no configuration needed."""
    if raw is None:
        raise OutcomeRejected(RejectReason.INVALID_JSON, "empty message value")
    size = len(raw)
    if size > MAX_MESSAGE_BYTES:
        raise OutcomeRejected(
            RejectReason.TOO_LARGE, f"{size} bytes exceeds the limit of {MAX_MESSAGE_BYTES}"
        )
    try:
        return OutcomeEvent.model_validate_json(raw)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise OutcomeRejected(RejectReason.INVALID_JSON, _first_error(exc)) from None
        if any(err["type"] == "finite_number" for err in exc.errors()):
            raise OutcomeRejected(RejectReason.NON_FINITE, _first_error(exc)) from None
        if any(_out_of_range(err) for err in exc.errors()):
            raise OutcomeRejected(
                RejectReason.OUT_OF_RANGE,
                f"features and prediction must lie within +-{MAX_MAGNITUDE:g}: "
                + _first_error(exc),
            ) from None
        raise OutcomeRejected(RejectReason.SCHEMA, _first_error(exc)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise OutcomeRejected(RejectReason.INVALID_JSON, str(exc)) from None


def check_outcome(event: OutcomeEvent, catalog: ModelTypeCatalog, now: datetime) -> OutcomeEvent:
    """The rules that need configuration and a clock."""
    spec = catalog.get(event.model_type)
    if spec is None:
        raise OutcomeRejected(
            RejectReason.UNKNOWN_MODEL_TYPE,
            f"model_type {event.model_type!r} is not one of {catalog.names()}",
        )
    if len(event.features) != spec.feature_count:
        raise OutcomeRejected(
            RejectReason.FEATURE_COUNT,
            f"{len(event.features)} features, {event.model_type} takes {spec.feature_count}",
        )
    if event.occurred_at > now + MAX_CLOCK_SKEW:
        raise OutcomeRejected(
            RejectReason.FUTURE_TIMESTAMP,
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds())} s after {now.isoformat()}",
        )
    return event


def validate_outcome(
    raw: bytes | str | None, catalog: ModelTypeCatalog, now: datetime
) -> OutcomeEvent:
    """Parse and check one outcome event; raises OutcomeRejected with the reason code."""
    return check_outcome(parse_outcome(raw), catalog, now)
