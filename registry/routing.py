"""Deterministic A/B assignment: a subject's bucket, and which version owns a bucket (pure).

The bucket is salted by the set of versions that carry traffic. Within one candidate's ramp
(production and that candidate, weights changing) the salt stays the same, so raising the
candidate's weight moves only the subjects at the boundary; a new candidate makes a new set,
hence a fresh split of the subjects independent of the last one (without the salt, every
candidate was served to the same subjects, and their differences from the rest read as the
candidate's effect, candidate after candidate).
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections.abc import Mapping

from contracts.versions import parse_version

BUCKETS = 10_000
# The first 8 bytes as a big-endian unsigned integer: `int.from_bytes(d[:8], "big")`, faster.
_first_8_bytes = struct.Struct(">Q").unpack_from


def salt_of(weights: Mapping[str, float]) -> str:
    """The split's salt: the versions with traffic, in order ("" when at most one has)."""
    live = sorted((v for v, w in weights.items() if w > 0), key=parse_version)
    return ",".join(live) if len(live) > 1 else ""


def bucket_of(model_type: str, subject_id: str, salt: str = "") -> int:
    """sha256 of `model_type NUL subject_id` (`model_type NUL salt NUL subject_id` when salted),
    first 8 bytes big-endian, mod 10,000."""
    key = f"{model_type}\x00{salt}\x00{subject_id}" if salt else f"{model_type}\x00{subject_id}"
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bucket_ranges(weights: Mapping[str, float]) -> list[tuple[str, int, int]]:
    """`(version, start, end)` half-open ranges, versions ascending, contiguous from bucket 0.

    Ascending order keeps production (older) first and candidates after it, so raising a
    candidate's weight only moves the buckets at the boundary: the fewest subjects possible.
    """
    live = [(v, w) for v, w in weights.items() if w > 0]
    total = sum(w for _, w in live)
    if total <= 0:
        return []
    ranges: list[tuple[str, int, int]] = []
    cumulative = 0.0
    start = 0
    ordered = sorted(live, key=lambda item: parse_version(item[0]))
    for index, (version, weight) in enumerate(ordered):
        cumulative += weight
        end = BUCKETS if index == len(ordered) - 1 else round(cumulative / total * BUCKETS)
        if end > start:
            ranges.append((version, start, end))
        start = max(start, end)
    return ranges


def version_for_bucket(weights: Mapping[str, float], bucket: int) -> str | None:
    """The version whose range holds `bucket`; None when no version has weight."""
    return RouteTable(weights).version_for(bucket)


class RouteTable:
    """`bucket_ranges` computed once for a weight map, for many lookups (a bisect each)."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.salt = salt_of(weights)
        ranges = bucket_ranges(weights)
        self._ends = [end for _, _, end in ranges]
        self._versions = [version for version, _, _ in ranges]

    @property
    def versions(self) -> frozenset[str]:
        """The versions that own at least one bucket."""
        return frozenset(self._versions)

    def version_for(self, bucket: int) -> str | None:
        if not self._ends or not 0 <= bucket < BUCKETS:
            return None
        return self._versions[bisect_right(self._ends, bucket)]

    def bucket_of(self, model_type: str, subject_id: str) -> int:
        """The subject's bucket under this table's salt."""
        return bucket_of(model_type, subject_id, self.salt)

    def route(self, model_type: str, subject_id: str) -> str | None:
        return self.version_for(self.bucket_of(model_type, subject_id))


class SubjectRoutes(RouteTable):
    """A route table for one model type that takes subjects: a client's hot path. It hashes as
    `bucket_of` does (a test holds them equal) from a prefix hashed once, in one call."""

    def __init__(self, model_type: str, weights: Mapping[str, float]) -> None:
        super().__init__(weights)
        prefix = f"{model_type}\x00{self.salt}\x00" if self.salt else f"{model_type}\x00"
        self._prefix = hashlib.sha256(prefix.encode())

    def version_of(self, subject_id: str) -> str | None:
        if not self._ends:
            return None
        digest = self._prefix.copy()
        digest.update(subject_id.encode())
        bucket = _first_8_bytes(digest.digest())[0] % BUCKETS
        return self._versions[bisect_right(self._ends, bucket)]


def route(weights: Mapping[str, float], model_type: str, subject_id: str) -> str | None:
    return RouteTable(weights).route(model_type, subject_id)
