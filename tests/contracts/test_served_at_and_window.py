"""`served_at` on outcome events and `outcome_window_seconds` on model types (issue 14's contract)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.model_types import ModelTypeCatalog, ModelTypeSpec
from contracts.validation import OutcomeRejected, RejectReason, validate_outcome
from tests.contracts.test_validation import CATALOG, NOW, encode, good_event


def test_served_at_is_optional() -> None:
    assert validate_outcome(encode(good_event()), CATALOG, NOW).served_at is None


def test_served_at_is_read_as_utc_and_may_equal_occurred_at() -> None:
    event = validate_outcome(
        encode(good_event(served_at="2026-11-26T10:30:00+01:00")), CATALOG, NOW
    )
    assert event.served_at == datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    same = validate_outcome(encode(good_event(served_at="2026-11-26T10:00:00Z")), CATALOG, NOW)
    assert same.served_at == same.occurred_at


@pytest.mark.parametrize(
    "served_at",
    [
        "2026-11-26T10:00:01Z",  # after occurred_at (10:00:00Z)
        "2026-11-26T11:00:01+01:00",  # the same, in another zone
        "2026-11-26T09:00:00",  # no timezone
        "an hour ago",
    ],
)
def test_a_bad_served_at_is_a_schema_error(served_at: str) -> None:
    with pytest.raises(OutcomeRejected) as caught:
        validate_outcome(encode(good_event(served_at=served_at)), CATALOG, NOW)
    assert caught.value.reason is RejectReason.SCHEMA
    assert "served_at" in caught.value.detail


def test_built_in_model_types_have_a_one_day_outcome_window() -> None:
    catalog = ModelTypeCatalog()
    for name in catalog.names():
        spec = catalog.get(name)
        assert spec is not None and spec.outcome_window_seconds == 86_400


def test_a_yaml_model_type_declares_its_outcome_window(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(
        "model_types:\n"
        "  - {name: quick, feature_count: 3, target: positive_outcome, loss: bce,\n"
        "     outcome_window_seconds: 120}\n"
    )
    spec = ModelTypeCatalog.load(path).get("quick")
    assert spec is not None and spec.outcome_window_seconds == 120


@pytest.mark.parametrize("window", [0, -5, 400 * 86_400])
def test_an_outcome_window_out_of_range_is_refused(window: float) -> None:
    with pytest.raises(ValidationError):
        ModelTypeSpec(
            name="quick", feature_count=3, target="positive_outcome", loss="bce",
            outcome_window_seconds=window,
        )  # fmt: skip


def test_the_forwarded_sample_keeps_served_at() -> None:
    from contracts.events import TrainingSampleForwarded

    event = validate_outcome(encode(good_event(served_at="2026-11-26T09:00:00Z")), CATALOG, NOW)
    forwarded = TrainingSampleForwarded.model_validate_json(
        TrainingSampleForwarded.json_from_outcome(event)
    )
    assert forwarded.served_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    without = validate_outcome(encode(good_event()), CATALOG, NOW)
    assert TrainingSampleForwarded.from_outcome(without).served_at is None
