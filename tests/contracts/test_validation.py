"""Every outcome-event rule of docs/design.md, broken one at a time, yields its stable reason code."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import MAX_MAGNITUDE
from contracts.model_types import ModelTypeCatalog
from contracts.validation import MAX_MESSAGE_BYTES, OutcomeRejected, RejectReason, validate_outcome

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CATALOG = ModelTypeCatalog()


def good_event(**changes: object) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "model_type": "calling_score",
        "model_version": "v1.0",
        "subject_id": "subject-1",
        "features": [0.25] * 23,
        "prediction": 0.61,
        "outcome_score": 0.7,
        "positive_outcome": True,
        "occurred_at": "2026-11-26T10:00:00Z",
    }
    event.update(changes)
    return event


def reason_of(raw: bytes) -> RejectReason:
    with pytest.raises(OutcomeRejected) as caught:
        validate_outcome(raw, CATALOG, NOW)
    return caught.value.reason


def encode(event: dict) -> bytes:
    return json.dumps(event).encode()


def test_a_good_event_is_accepted_with_utc_time() -> None:
    event = validate_outcome(
        encode(good_event(occurred_at="2026-11-26T11:00:00+01:00")), CATALOG, NOW
    )
    assert event.occurred_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert len(event.features) == 23


def test_an_event_five_minutes_ahead_is_still_accepted() -> None:
    ahead = (NOW + timedelta(minutes=4, seconds=59)).isoformat()
    assert validate_outcome(encode(good_event(occurred_at=ahead)), CATALOG, NOW)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"event_id": ', RejectReason.INVALID_JSON),
        (b"\xff\xfe\x00", RejectReason.INVALID_JSON),
        (b"", RejectReason.INVALID_JSON),
        (b"[1, 2, 3]", RejectReason.SCHEMA),
        (b"null", RejectReason.SCHEMA),
    ],
)
def test_malformed_payloads(raw: bytes, reason: RejectReason) -> None:
    assert reason_of(raw) == reason


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"prediction": "0.5"}, RejectReason.SCHEMA),
        ({"positive_outcome": 1}, RejectReason.SCHEMA),
        ({"features": "0.1,0.2"}, RejectReason.SCHEMA),
        ({"event_id": "not-a-uuid"}, RejectReason.SCHEMA),
        ({"model_version": "1.0"}, RejectReason.SCHEMA),
        ({"subject_id": ""}, RejectReason.SCHEMA),
        ({"subject_id": "x" * 257}, RejectReason.SCHEMA),
        ({"outcome_score": 1.5}, RejectReason.SCHEMA),
        ({"outcome_score": -0.1}, RejectReason.SCHEMA),
        ({"occurred_at": "yesterday"}, RejectReason.SCHEMA),
        ({"occurred_at": "2026-11-26T10:00:00"}, RejectReason.SCHEMA),
        ({"surprise": 1}, RejectReason.SCHEMA),
        ({"model_type": "churn"}, RejectReason.UNKNOWN_MODEL_TYPE),
        ({"features": [0.1] * 22}, RejectReason.FEATURE_COUNT),
        ({"features": [0.1] * 24}, RejectReason.FEATURE_COUNT),
        ({"occurred_at": "2026-11-26T12:05:01Z"}, RejectReason.FUTURE_TIMESTAMP),
        ({"occurred_at": "2099-01-01T00:00:00Z"}, RejectReason.FUTURE_TIMESTAMP),
        # no UTC year for these: it used to escape as an OverflowError and crash the worker
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, RejectReason.SCHEMA),
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, RejectReason.SCHEMA),
        # finite but too large: its square overflowed in the A/B test and crashed the worker
        ({"prediction": 1e200}, RejectReason.OUT_OF_RANGE),
        ({"prediction": -1.5e15}, RejectReason.OUT_OF_RANGE),
        ({"features": [0.1] * 22 + [2e15]}, RejectReason.OUT_OF_RANGE),
    ],
)
def test_each_rule_has_its_reason(changes: dict, reason: RejectReason) -> None:
    assert reason_of(encode(good_event(**changes))) == reason


@pytest.mark.parametrize("field", sorted(good_event()))
def test_a_missing_field_is_a_schema_error(field: str) -> None:
    event = good_event()
    del event[field]
    assert reason_of(encode(event)) == RejectReason.SCHEMA


@pytest.mark.parametrize(
    "raw",
    [
        encode(good_event(prediction=float("nan"))),  # json.dumps writes NaN
        encode(good_event(prediction=float("inf"))),
        encode(good_event(features=[0.1] * 22 + [float("-inf")])),
        encode(good_event()).replace(b'"prediction": 0.61', b'"prediction": 1e400'),
    ],
)
def test_non_finite_numbers(raw: bytes) -> None:
    assert reason_of(raw) == RejectReason.NON_FINITE


def test_oversized_payload_is_rejected_before_parsing() -> None:
    raw = b"{" + b" " * MAX_MESSAGE_BYTES + b"}"
    assert reason_of(raw) == RejectReason.TOO_LARGE


def test_the_rejection_carries_a_human_detail() -> None:
    with pytest.raises(OutcomeRejected) as caught:
        validate_outcome(encode(good_event(features=[0.1] * 3)), CATALOG, NOW)
    assert "3 features" in caught.value.detail and "23" in caught.value.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_the_validation_error(raw: bytes) -> None:
    try:
        validate_outcome(raw, CATALOG, NOW)
    except OutcomeRejected as rejected:
        assert isinstance(rejected.reason, RejectReason)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json_only_ever_raises_the_validation_error(value: object) -> None:
    try:
        validate_outcome(json.dumps(value).encode(), CATALOG, NOW)
    except OutcomeRejected as rejected:
        assert isinstance(rejected.reason, RejectReason)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {k: json_values for k in good_event()},
    )
)
def test_random_values_in_every_field_only_raise_the_validation_error(event: dict) -> None:
    try:
        validate_outcome(json.dumps(event).encode(), CATALOG, NOW)
    except OutcomeRejected as rejected:
        assert isinstance(rejected.reason, RejectReason)


@settings(max_examples=200, deadline=None)
@given(
    prediction=st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE),
    outcome_score=st.floats(0.0, 1.0),
    microsecond=st.integers(0, 999_999),
    offset_hours=st.integers(-12, 12),
    features=st.lists(st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE), min_size=23, max_size=23),
)
def test_the_fast_forward_json_means_what_the_model_serializes(
    prediction: float,
    outcome_score: float,
    microsecond: int,
    offset_hours: int,
    features: list[float],
) -> None:
    """Streams forwards `json_from_outcome`; the trainer must read exactly what `to_json` says."""
    from contracts.events import TrainingSampleForwarded, to_json

    zone = timezone(timedelta(hours=offset_hours))
    occurred = (NOW - timedelta(days=1)).astimezone(zone).replace(microsecond=microsecond)
    raw = json.dumps(
        good_event(
            prediction=prediction,
            outcome_score=outcome_score,
            features=features,
            occurred_at=occurred.isoformat(),
            served_at=(occurred - timedelta(seconds=microsecond)).isoformat(),
        )
    ).encode()
    event = validate_outcome(raw, CATALOG, NOW)
    fast = TrainingSampleForwarded.json_from_outcome(event)
    slow = to_json(TrainingSampleForwarded.from_outcome(event))
    assert TrainingSampleForwarded.model_validate_json(
        fast
    ) == TrainingSampleForwarded.model_validate_json(slow)
    assert json.loads(fast) == json.loads(slow)
