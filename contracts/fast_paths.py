"""Hand-checked fast paths for the two parses on the streams hot path; they only ever accept.

Each function accepts the common shape of an event (the one relearn's own producers write) and
returns exactly what the pydantic model would give, or None for anything else, so that the caller
runs the full model on it: every verdict and message stays pydantic's. In the worker they cut the
main thread's CPU per outcome event by ~11% (`bench/streams_hops.py`, BENCHMARKS.md);
`tests/contracts/test_fast_paths.py` holds them equal to the models on generated and mutated
events.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from contracts.events import MAX_MAGNITUDE, MAX_NAME_LENGTH, MAX_SUBJECT_ID_LENGTH, OutcomeEvent
from contracts.model_types import ModelTypeCatalog
from contracts.validation import MAX_CLOCK_SKEW
from contracts.versions import is_version

# Only the canonical forms: a lowercase hyphenated UUID (its str() is itself) and RFC 3339 with
# `T`, at most microseconds and `Z` or `+hh:mm` (what `datetime.fromisoformat` and pydantic read
# alike). Other spellings pydantic may accept go to pydantic.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")

_OUTCOME_FIELDS = frozenset(OutcomeEvent.model_fields)
_OUTCOME_REQUIRED = frozenset(n for n, f in OutcomeEvent.model_fields.items() if f.is_required())
_FLOAT_ONLY = frozenset((float,))
_NUMBERS = frozenset((float, int))


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in `raw`, or None (not JSON, or not an object)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if type(value) is dict else None


def _utc(value: object) -> datetime | None:
    """A canonical RFC 3339 timestamp in UTC, or None."""
    if type(value) is not str or _TIMESTAMP.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _bounded(value: object) -> bool:
    return type(value) is float and -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE


def forwardable_outcome(
    raw: bytes, catalog: ModelTypeCatalog, now: datetime
) -> dict[str, Any] | None:
    """The forwarded sample's fields (`contracts.events.forwarded_fields`) of an outcome event
    that `validate_outcome(raw, catalog, now)` accepts, or None: then ask it."""
    event = _json_object(raw)
    if event is None:
        return None
    keys = event.keys()
    if not (keys <= _OUTCOME_FIELDS and keys >= _OUTCOME_REQUIRED):
        return None
    event_id, model_type, subject_id = event["event_id"], event["model_type"], event["subject_id"]
    features, prediction = event["features"], event["prediction"]
    outcome_score = event["outcome_score"]
    if not (
        type(event_id) is str
        and _UUID.fullmatch(event_id)
        and type(model_type) is str
        and 0 < len(model_type) <= MAX_NAME_LENGTH
        and type(subject_id) is str
        and 0 < len(subject_id) <= MAX_SUBJECT_ID_LENGTH
        and type(event["model_version"]) is str
        and is_version(event["model_version"])
        and type(features) is list
        and features
        and set(map(type, features)) <= _FLOAT_ONLY
        and -MAX_MAGNITUDE <= min(features)
        and max(features) <= MAX_MAGNITUDE
        and _bounded(prediction)
        and type(outcome_score) is float
        and 0.0 <= outcome_score <= 1.0
        and type(event["positive_outcome"]) is bool
    ):
        return None
    spec = catalog.get(model_type)  # an unknown name (or a too long one) is pydantic's to judge
    if spec is None or len(features) != spec.feature_count:
        return None
    occurred_at = _utc(event["occurred_at"])
    if occurred_at is None or occurred_at > now + MAX_CLOCK_SKEW:
        return None
    served_at = event.get("served_at")
    if served_at is not None:
        served_at = _utc(served_at)
        if served_at is None or served_at > occurred_at:
            return None
    return {
        "event_id": event_id,
        "model_type": model_type,
        "model_version": event["model_version"],
        "features": features,
        "prediction": prediction,
        "outcome_score": outcome_score,
        "positive_outcome": event["positive_outcome"],
        "occurred_at": occurred_at,
        "served_at": served_at,
        "subject_id": subject_id,
    }


def training_sample(value: bytes) -> dict[str, Any] | None:
    """`streams.processing.parse_sample`'s dict for a training sample that
    `TrainingSampleForwarded` accepts, or None: then ask it."""
    sample = _json_object(value)
    if sample is None:
        return None
    try:
        event_id, model_type = sample["event_id"], sample["model_type"]
        version, features = sample["model_version"], sample["features"]
        prediction, outcome_score = sample["prediction"], sample["outcome_score"]
        positive_outcome, occurred = sample["positive_outcome"], sample["occurred_at"]
    except KeyError:
        return None
    subject_id = sample.get("subject_id")
    if not (
        type(event_id) is str
        and type(model_type) is str
        and len(model_type) <= MAX_NAME_LENGTH
        and type(version) is str
        and is_version(version)
        and type(features) is list
        and set(map(type, features)) <= _NUMBERS  # lax float: ints too; bool is its own type
        and type(prediction) in _NUMBERS
        and -MAX_MAGNITUDE <= prediction <= MAX_MAGNITUDE
        and type(outcome_score) in _NUMBERS
        and 0.0 <= outcome_score <= 1.0
        and type(positive_outcome) is bool
        and (subject_id is None or type(subject_id) is str)
    ):
        return None
    occurred_at = _utc(occurred)
    if occurred_at is None:
        return None
    # the UTC date: written by relearn's producers with `Z`, so the string's own date
    day = occurred[:10] if occurred[-1] == "Z" else occurred_at.date().isoformat()
    served = sample.get("served_at")
    served_at = None if served is None else _utc(served)
    if served is not None and served_at is None:
        return None
    return {
        "event_id": event_id,
        "model_type": model_type,
        "model_version": version,
        "prediction": float(prediction),
        "outcome_score": float(outcome_score),
        "positive_outcome": positive_outcome,
        "day": day,
        "occurred_ts": occurred_at.timestamp(),
        "served_ts": served_at.timestamp() if served_at is not None else None,
        "subject_id": subject_id,
    }
