"""Typed values of the worker's tables and their changelog codecs (the stored layout unchanged)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson

from streams.rules import DailyPerformance

V = TypeVar("V")


class Codec(Protocol[V]):
    """A table's values to and from their changelog record (and local store) bytes."""

    def encode(self, value: V) -> bytes: ...

    def decode(self, raw: bytes) -> V: ...


# ---------------------------------------------------------------------------------------------
# The dedupe window: event_id -> where it was first seen.


class FirstSeen(NamedTuple):
    """Where an event_id was first seen. A tuple, not a dataclass: one is made for every new
    event, and `rules.classify_sighting` unpacks it as the (partition, offset) pair it is."""

    partition: int
    offset: int


class FirstSeenCodec:
    """Stored as b"<partition>:<offset>" (RocksDB and the seen-event-ids changelog)."""

    def encode(self, value: FirstSeen) -> bytes:
        return b"%d:%d" % (value[0], value[1])

    def decode(self, raw: bytes) -> FirstSeen:
        partition, _, offset = raw.partition(b":")
        return FirstSeen(int(partition), int(offset))


# ---------------------------------------------------------------------------------------------
# Rejection counts: "<reason>@<partition>" -> how many, up to which source offset.


@dataclass(frozen=True, slots=True)
class RejectionCount:
    """Events of one reason dead-lettered from one source partition; `offset` is the last one
    counted, so a replayed rejection is not counted twice."""

    count: int = 0
    offset: int = -1

    def counted(self, offset: int) -> RejectionCount:
        """This count with the rejection at `offset` in it (once)."""
        return self if offset <= self.offset else RejectionCount(self.count + 1, offset)


class RejectionCountCodec:
    """Stored as {"count": n, "offset": o}."""

    def encode(self, value: RejectionCount) -> bytes:
        return orjson.dumps({"count": value.count, "offset": value.offset})

    def decode(self, raw: bytes) -> RejectionCount:
        data = orjson.loads(raw)
        return RejectionCount(int(data["count"]), int(data["offset"]))


# ---------------------------------------------------------------------------------------------
# Daily performance: "<model_type>|<day>|<version>" -> the day's sums.


@dataclass(frozen=True, slots=True)
class DayPerformance:
    """The sums of one (model type, version, UTC day) and, per source partition, the last
    offset they applied (`rules.is_applied`)."""

    sums: DailyPerformance = DailyPerformance()
    applied: Mapping[str, int] = field(default_factory=dict)


class DayPerformanceCodec:
    """Stored as {"p": [sample_count, positives, prediction_sum, outcome_score_sum],
    "applied": {source: offset}}, the layout every release so far has written."""

    def encode(self, value: DayPerformance) -> bytes:
        sums = value.sums
        return orjson.dumps(
            {
                "p": [
                    sums.sample_count,
                    sums.positives,
                    sums.prediction_sum,
                    sums.outcome_score_sum,
                ],
                "applied": value.applied,
            }
        )

    def decode(self, raw: bytes) -> DayPerformance:
        data = orjson.loads(raw)
        count, positives, prediction_sum, outcome_score_sum = data["p"]
        return DayPerformance(
            DailyPerformance(
                int(count), int(positives), float(prediction_sum), float(outcome_score_sum)
            ),
            {str(source): int(offset) for source, offset in (data.get("applied") or {}).items()},
        )


# ---------------------------------------------------------------------------------------------
# Values kept as JSON data, or as objects that serialize themselves (the model-type state).


class JsonCodec:
    """A value with `to_dict` is stored as that dict (orjson alone would write a dataclass field
    by field, not in its changelog format); read back as plain JSON data, which its owner parses
    (`processing.ModelTypeState.load`)."""

    def encode(self, value: Any) -> bytes:
        to_dict = getattr(value, "to_dict", None)
        return orjson.dumps(to_dict() if to_dict is not None else value)

    def decode(self, raw: bytes) -> Any:
        return orjson.loads(raw)


FIRST_SEEN = FirstSeenCodec()
REJECTION_COUNT = RejectionCountCodec()
DAY_PERFORMANCE = DayPerformanceCodec()
JSON = JsonCodec()
