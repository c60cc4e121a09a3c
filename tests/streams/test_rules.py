"""Unit tests of the pure streams rules: replay detection, dedupe, daily aggregates, trigger."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streams import rules


def test_replay_is_an_offset_at_or_below_the_last_applied_one() -> None:
    applied = rules.with_applied({}, "o1", 10)
    assert rules.is_applied(applied, "o1", 10)
    assert rules.is_applied(applied, "o1", 3)
    assert not rules.is_applied(applied, "o1", 11)
    assert not rules.is_applied(applied, "o2", 0)


def test_sighting_tells_a_replay_from_a_duplicate() -> None:
    assert rules.classify_sighting(None, 0, 5) is rules.Sighting.NEW
    assert rules.classify_sighting([0, 5], 0, 5) is rules.Sighting.REPLAY
    assert rules.classify_sighting([0, 5], 0, 9) is rules.Sighting.DUPLICATE
    assert rules.classify_sighting((1, 5), 0, 5) is rules.Sighting.DUPLICATE


def test_dedupe_ttl_covers_the_whole_window() -> None:
    assert rules.dedupe_ttl_seconds(24) == 86_400
    assert rules.dedupe_ttl_seconds(0.0001) == 1
    assert rules.dedupe_ttl_seconds(1.00001) >= 3600.036


def test_daily_performance_arithmetic() -> None:
    daily = rules.DailyPerformance()
    for positive, prediction, score in [(True, 0.9, 1.0), (False, 0.2, 0.0), (True, 0.7, 0.5)]:
        daily = daily.add(positive, prediction, score)
    row = daily.row("calling_score", "v1.0", "2026-11-26")
    assert row["sample_count"] == 3
    assert math.isclose(row["positive_outcome_rate"], 2 / 3)
    assert math.isclose(row["avg_prediction"], 0.6)
    assert math.isclose(row["avg_outcome_score"], 0.5)
    assert rules.DailyPerformance().row("m", "v", "d")["positive_outcome_rate"] == 0.0


def test_utc_day_and_window() -> None:
    late_evening_east = datetime(2026, 11, 27, 1, 0, tzinfo=UTC) + timedelta(hours=0)
    assert rules.utc_day(late_evening_east) == "2026-11-27"
    assert rules.first_day_of_window(date(2026, 11, 26), 1) == "2026-11-26"
    assert rules.first_day_of_window(date(2026, 11, 26), 7) == "2026-11-20"
    key = rules.performance_key("calling_score", "v1.2", "2026-11-26")
    assert rules.split_performance_key(key) == ("calling_score", "v1.2", "2026-11-26")


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=400))
def test_exactly_one_command_per_crossing(threshold: int, samples: int) -> None:
    counter = rules.RetrainCounter()
    fired = 0
    for i in range(samples):
        counter, crossed = rules.count_sample(counter, threshold, now=float(i))
        if crossed:
            fired += 1
            counter = rules.after_command(counter, now=float(i))
    assert fired == samples // threshold
    assert counter.new_samples == samples % threshold
    assert counter.commands == fired


def test_schedule_needs_age_and_a_new_sample() -> None:
    week = 7 * 86_400.0
    counter = rules.RetrainCounter()
    assert not rules.schedule_due(counter, 10 * week, week)  # nothing counted yet
    counter, _ = rules.count_sample(counter, 1000, now=100.0)
    assert not rules.schedule_due(counter, 100.0 + week - 1, week)
    assert rules.schedule_due(counter, 100.0 + week, week)
    counter = rules.after_command(counter, now=100.0 + week)
    assert counter.new_samples == 0 and counter.last_retrain_at == 100.0 + week
    assert not rules.schedule_due(counter, 100.0 + 3 * week, week)  # no new sample since


def test_command_ids_are_deterministic_and_distinct() -> None:
    counter = rules.RetrainCounter()
    first = rules.command_id(counter)
    assert first == rules.command_id(rules.RetrainCounter.from_dict(counter.to_dict()))
    assert rules.command_id(rules.after_command(counter, 1.0)) != first
    assert rules.command_id(rules.RetrainCounter()) != first  # another lineage


def test_the_threshold_waits_while_a_canary_runs_then_fires_once() -> None:
    counter = rules.RetrainCounter()
    fired = []
    for i in range(1, 1501):
        counter, crossed = rules.count_sample(counter, 1000, now=float(i), canary_running=i < 1200)
        if crossed:
            fired.append((i, counter.new_samples))
            counter = rules.after_command(counter, float(i))
    assert fired == [(1200, 1200)]


def test_counter_to_dict_holds_every_field() -> None:
    from dataclasses import asdict

    counter = rules.after_command(rules.count_sample(rules.RetrainCounter(), 1, 5.0)[0], 9.0)
    assert counter.to_dict() == asdict(counter)
    assert rules.RetrainCounter.from_dict(counter.to_dict()) == counter


def test_an_event_arrives_at_its_record_time_bounded_by_the_wall_clock() -> None:
    wall = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    an_hour_ago = int((wall - timedelta(hours=1)).timestamp() * 1000)
    assert rules.arrival_time(an_hour_ago, wall) == wall - timedelta(hours=1)
    in_an_hour = int((wall + timedelta(hours=1)).timestamp() * 1000)
    assert rules.arrival_time(in_an_hour, wall) == wall
    for no_timestamp in (None, 0, -1):
        assert rules.arrival_time(no_timestamp, wall) == wall


def test_a_manual_retrain_starts_the_count_again_once() -> None:
    counted = rules.RetrainCounter(lineage=str(uuid.uuid4()), new_samples=700, clock_started_at=0.0)
    reset = rules.after_manual_retrain(counted, 1_000.0)
    assert (reset.new_samples, reset.clock_started_at, reset.last_retrain_at) == (
        0,
        1_000.0,
        1_000.0,
    )
    assert reset.commands == counted.commands  # streams' own command ids do not move
    # the same command seen again (a restart re-reads the topic) changes nothing
    grown = rules.RetrainCounter(**{**reset.to_dict(), "new_samples": 5})
    assert rules.after_manual_retrain(grown, 1_000.0) == grown
    # a retrain of streams' own came after it: counted from that one, the manual is settled
    later = rules.after_command(counted, 1_500.0)
    settled = rules.after_manual_retrain(rules.count_sample(later, 10, 1_600.0)[0], 1_000.0)
    assert (settled.new_samples, settled.last_retrain_at, settled.manual_retrain_at) == (
        1,
        1_500.0,
        1_000.0,
    )


def test_a_counter_stored_before_manual_retrains_existed_reads_back() -> None:
    stored = {
        "lineage": "l",
        "new_samples": 3,
        "clock_started_at": 1.0,
        "last_retrain_at": None,
        "commands": 2,
    }
    counter = rules.RetrainCounter.from_dict(stored)
    assert counter.manual_retrain_at is None
    assert rules.RetrainCounter.from_dict(counter.to_dict()) == counter


@given(
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=1, max_value=100),
)
def test_one_retrain_in_flight_absorbs_every_crossing_until_it_is_answered(
    threshold: int, samples: int, answer_after: int
) -> None:
    """Each command is answered `answer_after` samples after it went: crossings in between are
    held (counted, never a second command), and the next command carries all of them."""
    counter = rules.RetrainCounter(lineage="00000000-0000-0000-0000-000000000001")
    answered: list[str] = []
    sent: list[tuple[str, int]] = []  # (command id, new samples)
    since_sent = 0
    for i in range(samples):
        if counter.pending_command is not None and since_sent == answer_after:
            answered.append(counter.pending_command)
        counter, end = rules.retrain_ended(counter, answered, float(i), timeout_seconds=1e9)
        in_flight = counter.pending_command is not None
        counter, crossed = rules.count_sample(counter, threshold, float(i), False, in_flight)
        since_sent += 1
        if crossed:
            assert not in_flight
            sent.append((rules.command_id(counter), counter.new_samples))
            counter = rules.after_command(counter, float(i))
            since_sent = 0
            assert counter.pending_command == sent[-1][0]
    # never two unanswered commands: every command but the last was answered before the next
    assert [command for command, _ in sent[:-1]] == answered[: len(sent) - 1]
    assert len({command for command, _ in sent}) == len(sent)
    # no sample lost: the commands' counts plus what is still counted are every sample
    assert sum(n for _, n in sent) + counter.new_samples == samples
    assert all(n >= threshold for _, n in sent)


def test_a_retrain_never_answered_stops_holding_after_the_timeout() -> None:
    counter = rules.after_command(rules.RetrainCounter(lineage=str(uuid.uuid4())), 100.0)
    pending = counter.pending_command
    assert pending is not None and counter.pending_since == 100.0
    still, end = rules.retrain_ended(counter, (), 100.0 + 599, timeout_seconds=600)
    assert end is None and still is counter
    cleared, end = rules.retrain_ended(counter, (), 100.0 + 600, timeout_seconds=600)
    assert end is rules.RetrainEnd.TIMED_OUT and cleared.pending_command is None
    answered, end = rules.retrain_ended(counter, ("other", pending), 101.0, timeout_seconds=600)
    assert end is rules.RetrainEnd.ANSWERED and answered.pending_since is None
    # survives the changelog round trip
    assert rules.RetrainCounter.from_dict(counter.to_dict()).pending_command == pending


def test_a_manual_retrain_replaces_the_retrain_in_flight() -> None:
    counter = rules.after_command(rules.RetrainCounter(lineage=str(uuid.uuid4())), 100.0)
    manual = rules.after_manual_retrain(counter, 150.0, "manual-1")
    assert (manual.pending_command, manual.pending_since) == ("manual-1", 150.0)
    # the answer to streams' own command no longer ends the wait, the manual one's does
    same, end = rules.retrain_ended(manual, (counter.pending_command,), 160.0, 1e9)
    assert end is None and same.pending_command == "manual-1"
    # a manual command without an id resets the count and leaves the pending retrain alone
    anonymous = rules.after_manual_retrain(counter, 150.0)
    assert anonymous.pending_command == counter.pending_command and anonymous.new_samples == 0


def test_held_crossings_counts_beyond_the_one_a_command_answers() -> None:
    counter = rules.RetrainCounter(new_samples=3500)
    assert rules.held_crossings(counter, 1000) == 2
    assert rules.held_crossings(rules.RetrainCounter(new_samples=999), 1000) == 0
