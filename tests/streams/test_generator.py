"""`streams.testing.outcome_events` with `served_since`: the shape a deployment sends while a
candidate is under test (the benchmarks' live-test run relies on it)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from contracts.model_types import ModelTypeCatalog
from contracts.validation import OutcomeRejected, validate_outcome
from streams.testing import outcome_events


def test_served_events_are_valid_in_the_window_and_split_nine_to_one() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    since = now - timedelta(minutes=15)
    messages, truth = outcome_events(4_000, seed=9, now=now, served_since=since)
    catalog = ModelTypeCatalog()
    versions: Counter[str] = Counter()
    ids = set()
    for _, raw in messages:
        try:
            event = validate_outcome(raw, catalog, now)
        except OutcomeRejected:
            continue
        assert event.served_at is not None
        assert since <= event.served_at <= now - timedelta(seconds=60)
        assert event.served_at <= event.occurred_at <= event.served_at + timedelta(seconds=60)
        if str(event.event_id) not in ids:
            ids.add(str(event.event_id))
            versions[event.model_version] += 1
    assert ids == truth.valid_ids
    assert set(versions) == {"v1.0", "v1.1"}
    share = versions["v1.1"] / sum(versions.values())
    # ~3,900 valid events at p = 0.1: sd 0.005, so 0.08-0.12 is four of them either side
    assert 0.08 < share < 0.12, versions


def test_without_served_since_no_event_carries_served_at() -> None:
    plain, _ = outcome_events(500, seed=4)
    assert not any(b"served_at" in value for _, value in plain)
