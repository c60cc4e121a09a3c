"""The hot path's hand-checked parses accept only what the pydantic models accept, and give the same."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events import MAX_MAGNITUDE, OutcomeEvent, forwarded_fields, forwarded_json
from contracts.fast_paths import forwardable_outcome, training_sample
from contracts.model_types import ModelTypeCatalog
from contracts.validation import OutcomeRejected, validate_outcome
from streams.processing import MalformedSample, _parse_sample_with_pydantic
from streams.testing import outcome_events
from tests.contracts.test_validation import good_event as valid_event

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CATALOG = ModelTypeCatalog()
FIELDS = tuple(OutcomeEvent.model_fields)  # the model's, so a new field is tried too
# Values near every edge the models draw: types pydantic converts (lax) or refuses (strict),
# other spellings of ids, versions and timestamps, bounds, lengths, the future.
TRICKY: list[object] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**70,
    0.0,
    -0.0,
    0.5,
    1.5,
    MAX_MAGNITUDE,
    1.0000001e15,
    -1e16,
    "",
    "0.5",
    "x",
    "x" * 64,
    "x" * 65,
    "x" * 256,
    "x" * 257,
    "calling_score",
    "outcome_prediction",
    "no_such_type",
    "v1.0",
    "v0.0",
    "v1.0\n",
    "V1.0",
    "v01.0",
    "v1234567.0",
    str(uuid.UUID(int=5)),
    str(uuid.UUID(int=2**128 - 1)).upper(),
    uuid.UUID(int=5).hex,
    f"urn:uuid:{uuid.UUID(int=5)}",
    "2026-11-26T10:00:00Z",
    "2026-11-26T10:00:00+01:00",
    "2026-11-26T10:00:00.5-05:30",
    "2026-11-26T10:00:00.123456+00:00",
    "2026-11-26T10:00:00.1234567Z",
    "2026-11-26T10:00:00",
    "2026-11-26 10:00:00Z",
    "2026-11-26t10:00:00z",
    "2026-02-30T10:00:00Z",
    "2026-11-26T24:00:00Z",
    "2026-11-26T10:00:60Z",
    "2026-11-26T10:00:00+24:00",
    "2026-11-26T12:04:59Z",
    "2026-11-26T12:05:01Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    1764150000,
    [],
    [0.1] * 23,
    [0.1] * 22,
    [1] * 23,
    [True] * 23,
    [0.1] * 22 + ["0.1"],
    [1e16] * 23,
    [0.1] * 22 + [None],
    {},
]
DROP = object()


def good_event(**changes: object) -> dict:
    """test_validation's valid event, served an hour before it occurred; DROP removes a field."""
    event = valid_event(**{"served_at": "2026-11-26T09:00:00Z", **changes})
    return {k: v for k, v in event.items() if v is not DROP}


def encode(fields: dict) -> bytes:
    """The JSON of `fields` without those set to DROP."""
    return json.dumps({k: v for k, v in fields.items() if v is not DROP}).encode()


def slow_forward(raw: bytes) -> bytes | None:
    """What the worker forwards for `raw` by the models alone; None when they reject it."""
    try:
        event = validate_outcome(raw, CATALOG, NOW)
    except OutcomeRejected:
        return None
    return forwarded_json(forwarded_fields(event, str(event.event_id)))


def slow_sample(value: bytes) -> dict | None:
    try:
        return _parse_sample_with_pydantic(value)
    except MalformedSample:
        return None


changes = st.dictionaries(
    st.sampled_from([*FIELDS, "extra"]),
    st.sampled_from([*TRICKY, DROP]),
    max_size=3,
)
floats = st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE)


@st.composite
def varied_events(draw: st.DrawFn) -> dict:
    """A valid outcome event with drawn numbers and timestamps (any offset, any microsecond)."""
    zone = timezone(timedelta(hours=draw(st.integers(-14, 14))))
    microsecond = draw(st.integers(0, 999_999))
    occurred = (NOW - timedelta(hours=2)).astimezone(zone).replace(microsecond=microsecond)
    return good_event(
        prediction=draw(floats),
        outcome_score=draw(st.floats(0.0, 1.0)),
        occurred_at=occurred.isoformat(),
        served_at=(occurred - timedelta(seconds=microsecond)).isoformat(),
    )


def sample_of(raw: bytes) -> bytes:
    """The training sample a valid outcome event becomes (as the worker forwards it)."""
    forward = slow_forward(raw)
    assert forward is not None
    return forward


@settings(max_examples=1500, deadline=None)
@given(varied_events(), changes)
def test_the_outcome_fast_path_never_accepts_what_the_model_rejects_and_forwards_the_same(
    event: dict, change: dict
) -> None:
    raw = encode({**event, **change})
    fast = forwardable_outcome(raw, CATALOG, NOW)
    if fast is not None:
        assert forwarded_json(fast) == slow_forward(raw)


@settings(max_examples=1500, deadline=None)
@given(varied_events(), changes)
def test_the_sample_fast_path_never_accepts_what_the_model_rejects_and_reads_the_same(
    event: dict, change: dict
) -> None:
    value = encode({**json.loads(sample_of(encode(event))), **change})
    fast = training_sample(value)
    if fast is not None:  # as JSON: 1 == True == 1.0 in Python, not in a sum or a table
        assert json.dumps(fast) == json.dumps(slow_sample(value))


@given(st.binary(max_size=600))
def test_random_bytes_are_never_accepted_where_the_models_refuse(raw: bytes) -> None:
    if forwardable_outcome(raw, CATALOG, NOW) is not None:
        assert slow_forward(raw) is not None
    if training_sample(raw) is not None:
        assert slow_sample(raw) is not None


@pytest.mark.parametrize(
    "change",
    [
        {"model_version": "v1.0\n"},  # the version pattern's `$` is pydantic's, not re's
        # valid, but its str() differs: the model's
        {"event_id": str(uuid.UUID(int=2**128 - 1)).upper()},
        {"features": [1] * 23},  # strict float takes ints, and they forward as 1.0: the model's
        {"occurred_at": "2026-11-26T12:05:01Z"},  # more than 5 min ahead of NOW
        {"served_at": "2026-11-26T11:00:00Z", "occurred_at": "2026-11-26T10:00:00Z"},
        {"extra": 1},
        {"subject_id": ""},
        {"model_type": "no_such_type"},
        {"features": [0.25] * 22},
    ],
)
def test_the_edges_go_to_the_model(change: dict) -> None:
    raw = encode(good_event(**change))
    assert forwardable_outcome(raw, CATALOG, NOW) is None


def test_every_event_relearn_generates_takes_both_fast_paths() -> None:
    """Otherwise the fast paths would be dead code: every valid generated event, and every
    sample the worker forwards from it, is accepted by hand and matches the models."""
    now = datetime.now(UTC)
    messages, truth = outcome_events(2_000, seed=3, now=now)
    accepted = 0
    for _, raw in messages:
        fields = forwardable_outcome(raw, CATALOG, now)
        if fields is None:
            with pytest.raises(OutcomeRejected):
                validate_outcome(raw, CATALOG, now)
            continue
        accepted += 1
        forward = forwarded_json(fields)
        event = validate_outcome(raw, CATALOG, now)
        assert forward == forwarded_json(forwarded_fields(event, str(event.event_id)))
        assert json.dumps(training_sample(forward)) == json.dumps(slow_sample(forward))
        assert slow_sample(forward) is not None
    assert accepted == len(messages) - truth.invalid


def test_every_tricky_value_in_every_field_alone() -> None:
    """Each edge on its own, exhaustively (the hypothesis tests above mix them at random)."""
    outcome_accepted = sample_accepted = 0
    base_sample = json.loads(sample_of(encode(good_event())))
    for field in [*FIELDS, "extra"]:
        for value in [*TRICKY, DROP]:
            raw = encode(good_event(**{field: value}))
            fast = forwardable_outcome(raw, CATALOG, NOW)
            if fast is not None:
                outcome_accepted += 1
                assert forwarded_json(fast) == slow_forward(raw), (field, value)
            encoded = encode({**base_sample, field: value})
            fast_sample = training_sample(encoded)
            if fast_sample is not None:
                sample_accepted += 1
                assert json.dumps(fast_sample) == json.dumps(slow_sample(encoded)), (field, value)
    # some of each field's edges are accepted (the checks run), most are not
    assert 20 < outcome_accepted < 200 and 50 < sample_accepted < 400
