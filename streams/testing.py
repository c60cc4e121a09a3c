"""Synthetic outcome events with their exact ground truth, for the streams tests and benchmarks."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MODEL_TYPES = ("calling_score", "outcome_prediction")
VERSIONS = ("v0.0", "v1.0", "v1.1")
FEATURE_COUNT = 23
POISON: tuple[bytes, ...] = (
    b"not json at all",
    b'{"event_id": "x"}',
    orjson.dumps(
        {
            "event_id": str(uuid.UUID(int=7)),
            "model_type": "no_such_type",
            "model_version": "v1.0",
            "subject_id": "s",
            "features": [0.0] * 23,
            "prediction": 0.5,
            "outcome_score": 0.5,
            "positive_outcome": True,
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    ),
    b"{" + b" " * 70_000 + b"}",
)


@dataclass
class DailyTruth:
    sample_count: int = 0
    positives: int = 0
    prediction_sum: float = 0.0
    outcome_score_sum: float = 0.0


@dataclass
class GroundTruth:
    """What the tables must hold after the events were processed exactly once."""

    valid_ids: set[str] = field(default_factory=set)
    per_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    daily: dict[tuple[str, str, str], DailyTruth] = field(
        default_factory=lambda: defaultdict(DailyTruth)
    )
    invalid: int = 0
    duplicates: int = 0

    def retrain_commands(self, threshold: int) -> int:
        return sum(count // threshold for count in self.per_type.values())


def outcome_events(
    count: int,
    seed: int = 42,
    duplicate_rate: float = 0.02,
    invalid_rate: float = 0.01,
    now: datetime | None = None,
    days: int = 3,
    served_since: datetime | None = None,
) -> tuple[list[tuple[bytes, bytes]], GroundTruth]:
    """`count` (key, value) messages: valid events, repeats of earlier ones, and poison.

    With `served_since`, what a deployment sends while candidate v1.1 is under test against v1.0:
    every valid event carries `served_at`, between then and a minute before `now`, by v1.1 one
    time in ten (else v1.0), and occurred up to a minute after it was served."""
    rng = random.Random(seed)
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    serving = (moment - served_since).total_seconds() - 60 if served_since else 0.0
    truth = GroundTruth()
    messages: list[tuple[bytes, bytes]] = []
    valid: list[tuple[bytes, bytes]] = []
    for i in range(count):
        roll = rng.random()
        if roll < duplicate_rate and valid:
            messages.append(rng.choice(valid))
            truth.duplicates += 1
            continue
        if roll < duplicate_rate + invalid_rate:
            messages.append((f"poison-{i}".encode(), rng.choice(POISON)))
            truth.invalid += 1
            continue
        model_type = rng.choice(MODEL_TYPES)
        served: datetime | None = None
        if served_since is not None:
            version = "v1.1" if rng.random() < 0.1 else "v1.0"
            served = served_since + timedelta(seconds=rng.uniform(0, serving))
            occurred = served + timedelta(seconds=rng.uniform(0, 60))
        else:
            version = rng.choice(VERSIONS)
            occurred = moment - timedelta(seconds=rng.randrange(days * 86_400))
        positive = rng.random() < 0.4
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "model_type": model_type,
            "model_version": version,
            "subject_id": f"subject-{rng.randrange(10_000)}",
            "features": [round(rng.random(), 4) for _ in range(FEATURE_COUNT)],
            "prediction": rng.random(),
            "outcome_score": rng.random(),
            "positive_outcome": positive,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
        }
        if served is not None:
            event["served_at"] = served.isoformat().replace("+00:00", "Z")
        message = (event["subject_id"].encode(), orjson.dumps(event))
        messages.append(message)
        valid.append(message)
        truth.valid_ids.add(event["event_id"])
        truth.per_type[model_type] += 1
        day = truth.daily[(model_type, version, occurred.date().isoformat())]
        day.sample_count += 1
        day.positives += int(positive)
        day.prediction_sum += event["prediction"]
        day.outcome_score_sum += event["outcome_score"]
    return messages, truth
