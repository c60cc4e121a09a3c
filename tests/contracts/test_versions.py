"""The contract's version numbers and serving facts: one parser, one order, one ramp."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events import RegistryEventOccurred, RegistryEventType
from contracts.serving import (
    INITIAL_CANDIDATE_WEIGHT,
    MAX_CANDIDATE_WEIGHT,
    RAMP,
    Status,
    next_ramp_weight,
)
from contracts.versions import (
    NO_MODEL_VERSION,
    Version,
    is_version,
    newest_version,
    parse_version,
    version_order,
)

numbers = st.integers(0, 999_999)


@given(numbers, numbers)
def test_a_version_parses_to_its_numbers(major: int, minor: int) -> None:
    assert parse_version(f"v{major}.{minor}") == (major, minor)


def test_versions_order_by_number_and_malformed_ones_come_first() -> None:
    assert newest_version(["v1.9", "v1.10", "v0.99"]) == "v1.10"
    assert newest_version([]) is None
    assert version_order("latest") < version_order(NO_MODEL_VERSION) < version_order("v0.1")
    assert not is_version("v01.0") and not is_version("1.0") and is_version(NO_MODEL_VERSION)


def test_the_ramp_starts_at_the_initial_weight_and_ends_in_a_promotion() -> None:
    assert RAMP[0] == INITIAL_CANDIDATE_WEIGHT and RAMP[-1] == 1.0
    assert MAX_CANDIDATE_WEIGHT == RAMP[-2]
    assert [next_ramp_weight(w) for w in (0.0, 0.1, 0.3, 0.5, 1.0)] == [0.1, 0.5, 0.5, 1.0, 1.0]


def test_a_registry_event_carries_a_status() -> None:
    event = RegistryEventOccurred.model_validate_json(
        b'{"type": "version_registered", "model_type": "m", "version": "v1.0", "status": "staging"}'
    )
    assert event.status is Status.STAGING
    assert event.type is RegistryEventType.VERSION_REGISTERED


def test_the_forwarded_sample_has_one_spelling_on_both_paths() -> None:
    import uuid

    import pytest
    from pydantic import ValidationError

    from contracts.events import OutcomeEvent, TrainingSampleForwarded, to_json

    event = OutcomeEvent.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "model_type": "calling_score",
            "model_version": "v1.2",
            "subject_id": "s1",
            "features": [0.5, -1.0],
            "prediction": 0.25,
            "outcome_score": 1.0,
            "positive_outcome": True,
            "occurred_at": "2026-11-30T10:00:00+01:00",
        },
        strict=False,
    )
    fast = TrainingSampleForwarded.model_validate_json(
        TrainingSampleForwarded.json_from_outcome(event)
    )
    built = TrainingSampleForwarded.from_outcome(event)
    assert fast == built == TrainingSampleForwarded.model_validate_json(to_json(built))
    with pytest.raises(ValidationError):
        TrainingSampleForwarded.model_validate({**built.model_dump(), "model_version": "latest"})


def test_a_version_with_a_trailing_newline_is_not_a_version_as_pydantic_says() -> None:
    """The pattern's `$` would let "v1.0\n" through Python's `re.match`; pydantic refuses it."""
    with pytest.raises(pydantic.ValidationError):
        pydantic.TypeAdapter(Version).validate_python("v1.0\n")
    assert not is_version("v1.0\n")
    with pytest.raises(ValueError, match="not a version"):
        parse_version("v1.0\n")
    assert is_version("v1.0") and parse_version("v12.3") == (12, 3)
