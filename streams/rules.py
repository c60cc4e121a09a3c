"""Pure rules of streams: replay detection, de-duplication, daily aggregates, retrain trigger.

Nothing here does I/O; the worker calls these functions and stores what they return.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

# ---------------------------------------------------------------------------------------------
# Idempotence: every stored value remembers, per source partition, the last offset it applied.


def source_name(kind: str, partition: int) -> str:
    """The name under which a value remembers its progress in one source partition."""
    return f"{kind}{partition}"


def is_applied(applied: Mapping[str, int], source: str, offset: int) -> bool:
    """True when the message at `offset` of `source` was already applied (a replay)."""
    last = applied.get(source)
    return last is not None and offset <= last


def with_applied(applied: Mapping[str, int], source: str, offset: int) -> dict[str, int]:
    return {**applied, source: offset}


# ---------------------------------------------------------------------------------------------
# The clock an event is judged by.


def arrival_time(record_millis: int | None, wall_clock: datetime) -> datetime:
    """When an outcome event arrived: its Kafka record timestamp, never later than the wall clock.

    `future_timestamp` compares `occurred_at` with this. The record timestamp is the same on
    every read, so a replay after a crash judges an event as its first read did; the wall clock
    alone would accept, minutes later, an event that was dead-lettered. The wall clock still
    bounds it: a record stamped in the future cannot let a future `occurred_at` through.
    `record_millis` is None (or not positive) when the record carries no timestamp.
    """
    if record_millis is None or record_millis <= 0:
        return wall_clock
    return min(datetime.fromtimestamp(record_millis / 1000, UTC), wall_clock)


# ---------------------------------------------------------------------------------------------
# De-duplication on event_id within a window.


class Sighting(StrEnum):
    NEW = "new"  # first time this event_id is seen
    REPLAY = "replay"  # the very message seen before, read again after a restart: not a duplicate
    DUPLICATE = "duplicate"  # another message with an event_id already seen: drop it


def classify_sighting(
    first_seen: tuple[int, int] | list[int] | None, partition: int, offset: int
) -> Sighting:
    """Decide from where an event_id was first seen (partition, offset) what this message is.

    Remembering the first position, not just "seen", keeps the rule exact across crashes: a
    message replayed after a restart finds its own position and is processed again (its
    downstream effects are idempotent), while a true repeat finds another position.
    """
    if first_seen is None:
        return Sighting.NEW
    seen_partition, seen_offset = first_seen
    if seen_partition == partition and seen_offset == offset:
        return Sighting.REPLAY
    return Sighting.DUPLICATE


def dedupe_ttl_seconds(window_hours: float) -> int:
    """Seconds an event_id must be kept so that a repeat within the window is always caught.

    RocksDB's TTL never drops an entry younger than the TTL (it drops older ones at compaction),
    so rounding up keeps the rule exact inside the window while disk use stays bounded.
    """
    return max(1, math.ceil(window_hours * 3600))


# ---------------------------------------------------------------------------------------------
# Daily performance per (model_type, model_version, UTC day of occurred_at).


def utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def performance_key(model_type: str, version: str, day: str) -> str:
    return f"{model_type}|{day}|{version}"


def performance_key_type(key: str) -> str:
    """The model type of a performance key (any key: the view reads it off the changelog)."""
    return key.partition("|")[0]


def split_performance_key(key: str) -> tuple[str, str, str]:
    model_type, day, version = key.split("|")
    return model_type, version, day


def first_day_of_window(today: date, days: int) -> str:
    """The oldest UTC day shown by `?days=N` (N days including today)."""
    return (today - timedelta(days=max(days, 1) - 1)).isoformat()


@dataclass(frozen=True)
class DailyPerformance:
    """Running sums for one (model_type, version, day); rates are derived, never stored."""

    sample_count: int = 0
    positives: int = 0
    prediction_sum: float = 0.0
    outcome_score_sum: float = 0.0

    def add(self, positive: bool, prediction: float, outcome_score: float) -> DailyPerformance:
        return DailyPerformance(
            sample_count=self.sample_count + 1,
            positives=self.positives + int(bool(positive)),
            prediction_sum=self.prediction_sum + prediction,
            outcome_score_sum=self.outcome_score_sum + outcome_score,
        )

    def row(self, model_type: str, version: str, day: str) -> dict[str, Any]:
        n = self.sample_count
        return {
            "model_type": model_type,
            "version": version,
            "day": day,
            "sample_count": n,
            "positive_outcome_rate": self.positives / n if n else 0.0,
            "avg_prediction": self.prediction_sum / n if n else 0.0,
            "avg_outcome_score": self.outcome_score_sum / n if n else 0.0,
        }


# ---------------------------------------------------------------------------------------------
# Retrain trigger: a threshold of new samples, or a maximum age with at least one new sample.


# How long a retrain command may stay unanswered before another may go (the trainer may be gone).
DEFAULT_PENDING_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class RetrainCounter:
    """New samples of one model type since its last retrain command, and that command's fate.

    `clock_started_at` is the last retrain (epoch seconds), or the first sample when there was
    none; `commands` numbers the emitted commands, so each has a deterministic id.
    `pending_command` is the retrain in flight (sent, not yet answered by a registered version
    or a rejection) and `pending_since` when it went: one retrain in flight per model type.
    """

    lineage: str = field(default_factory=lambda: str(uuid.uuid4()))
    new_samples: int = 0
    clock_started_at: float | None = None
    last_retrain_at: float | None = None
    commands: int = 0
    manual_retrain_at: float | None = None  # requested_at of the last manual command applied
    pending_command: str | None = None
    pending_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: `asdict` deep-copies field by field, ~10x slower on this hot path.
        return {
            "lineage": self.lineage,
            "new_samples": self.new_samples,
            "clock_started_at": self.clock_started_at,
            "last_retrain_at": self.last_retrain_at,
            "commands": self.commands,
            "manual_retrain_at": self.manual_retrain_at,
            "pending_command": self.pending_command,
            "pending_since": self.pending_since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrainCounter:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def count_sample(
    counter: RetrainCounter,
    threshold: int,
    now: float,
    canary_running: bool = False,
    retrain_in_flight: bool = False,
) -> tuple[RetrainCounter, bool]:
    """Count one new sample; True when this very sample reaches the threshold (one per crossing).

    A crossing is held, never dropped (the samples keep counting, and the first sample after the
    hold ends fires it), while:
    - a retrain of this type is in flight (`retrain_ended` has not cleared it): one retrain at
      a time, else a busy type queues a command per `threshold` samples, faster than any can
      train;
    - a candidate is under A/B test: one canary at a time, else every 1,000 samples would add
      another 10% candidate before any could be judged.
    The schedule trigger is not held by a canary, so a test that never decides cannot stop
    retraining for good.
    """
    clock = counter.clock_started_at if counter.clock_started_at is not None else now
    # Spelled out, not `replace`: this runs for every sample.
    counted = RetrainCounter(
        counter.lineage,
        counter.new_samples + 1,
        clock,
        counter.last_retrain_at,
        counter.commands,
        counter.manual_retrain_at,
        counter.pending_command,
        counter.pending_since,
    )
    return counted, (
        counted.new_samples >= threshold and not canary_running and not retrain_in_flight
    )


def held_crossings(counter: RetrainCounter, threshold: int) -> int:
    """How many threshold crossings the counter holds beyond the one its next command answers."""
    return max(0, counter.new_samples // max(threshold, 1) - 1)


def schedule_due(counter: RetrainCounter, now: float, max_age_seconds: float) -> bool:
    """The schedule trigger: at least one new sample and the clock older than the maximum age."""
    return (
        counter.new_samples >= 1
        and counter.clock_started_at is not None
        and now - counter.clock_started_at >= max_age_seconds
    )


def after_command(counter: RetrainCounter, now: float) -> RetrainCounter:
    """The counter once a command is emitted: zero samples, the clock restarted, and that
    command (its id from `command_id` of the counter before) in flight."""
    return replace(
        counter,
        new_samples=0,
        clock_started_at=now,
        last_retrain_at=now,
        commands=counter.commands + 1,
        pending_command=command_id(counter),
        pending_since=now,
    )


class RetrainEnd(StrEnum):
    """Why the retrain in flight is no longer in flight."""

    ANSWERED = "answered"  # a version registered or a rejection (superseded included) for it
    TIMED_OUT = "timed_out"  # no answer within the pending timeout: the trainer may be gone


def retrain_ended(
    counter: RetrainCounter,
    answered: Container[str],
    now: float,
    timeout_seconds: float,
) -> tuple[RetrainCounter, RetrainEnd | None]:
    """The counter with its pending retrain cleared once it is answered or timed out.

    `answered` holds the command ids the registry has registered a version for or seen
    rejected. The timeout bounds the wait: a trainer that never answers (gone, or a command
    lost) must not stop retraining for good; the next crossing then sends a new command.
    """
    pending = counter.pending_command
    if pending is None:
        return counter, None
    if pending in answered:
        end = RetrainEnd.ANSWERED
    elif counter.pending_since is not None and now - counter.pending_since >= timeout_seconds:
        end = RetrainEnd.TIMED_OUT
    else:
        return counter, None
    return replace(counter, pending_command=None, pending_since=None), end


def after_manual_retrain(
    counter: RetrainCounter, requested_at: float, manual_command: str | None = None
) -> RetrainCounter:
    """The counter once a manual retrain command (`POST /models/{type}/retrain`) is known.

    A manual retrain is a retrain: the count starts again from zero and the clock restarts at
    its `requested_at`. It also replaces the retrain in flight: an operator's command is never
    held (the registry publishes it directly), so streams waits for its answer instead, and
    the trainer answers the older command still queued as `superseded`. Each manual command
    applies once (remembered by its `requested_at`, since a command may lack an id), and not
    at all when a command of streams' own came after it. (A command dated in the future never
    gets here: `registry_view` refuses it.)
    """
    if counter.manual_retrain_at is not None and requested_at <= counter.manual_retrain_at:
        return counter  # applied already
    if counter.last_retrain_at is not None and requested_at <= counter.last_retrain_at:
        return replace(counter, manual_retrain_at=requested_at)  # a later retrain counts
    replaces = manual_command is not None
    return replace(
        counter,
        new_samples=0,
        clock_started_at=requested_at,
        last_retrain_at=requested_at,
        manual_retrain_at=requested_at,
        pending_command=manual_command if replaces else counter.pending_command,
        pending_since=requested_at if replaces else counter.pending_since,
    )


def lineage_for(first_event_id: str) -> str:
    """A new counter's lineage, derived from the first sample it counts.

    Deterministic, so that a replay after a crash that lost a new counter's first write draws
    the same lineage again and re-sends its commands under the same ids.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"relearn:retrain-lineage:{first_event_id}"))


def command_id(counter: RetrainCounter) -> str:
    """A deterministic id for the next command, so a resend after a crash is recognisable."""
    return str(uuid.uuid5(uuid.UUID(counter.lineage), f"retrain-{counter.commands + 1}"))
