"""Deterministic A/B assignment: a subject's bucket, and which version owns a bucket (pure)."""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections.abc import Mapping

from contracts.versions import parse_version

BUCKETS = 10_000
# The first 8 bytes as a big-endian unsigned integer: `int.from_bytes(d[:8], "big")`, faster.
_first_8_bytes = struct.Struct(">Q").unpack_from


def bucket_of(model_type: str, subject_id: str) -> int:
    """sha256 of `model_type NUL subject_id`, first 8 bytes big-endian, mod 10,000."""
    digest = hashlib.sha256(f"{model_type}\x00{subject_id}".encode()).digest()
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


class SubjectRoutes(RouteTable):
    """A route table for one model type that takes subjects: a client's hot path. It hashes as
    `bucket_of` does (a test holds them equal) from a prefix hashed once, in one call."""

    def __init__(self, model_type: str, weights: Mapping[str, float]) -> None:
        super().__init__(weights)
        self._prefix = hashlib.sha256(f"{model_type}\x00".encode())

    def version_of(self, subject_id: str) -> str | None:
        if not self._ends:
            return None
        digest = self._prefix.copy()
        digest.update(subject_id.encode())
        bucket = _first_8_bytes(digest.digest())[0] % BUCKETS
        return self._versions[bisect_right(self._ends, bucket)]


def route(weights: Mapping[str, float], model_type: str, subject_id: str) -> str | None:
    return version_for_bucket(weights, bucket_of(model_type, subject_id))
