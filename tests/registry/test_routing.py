"""Traffic buckets: deterministic, shares match weights, minimal movement when weights change."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.routing import (
    BUCKETS,
    RouteTable,
    bucket_of,
    bucket_ranges,
    salt_of,
    version_for_bucket,
)


def test_bucket_is_stable_and_in_range() -> None:
    assert bucket_of("calling_score", "s1") == bucket_of("calling_score", "s1")
    assert 0 <= bucket_of("calling_score", "s1") < BUCKETS
    assert bucket_of("calling_score", "s1") != bucket_of("outcome_prediction", "s1")


def test_shares_within_one_point_over_100k_subjects() -> None:
    weights = {"v1.0": 0.7, "v1.1": 0.2, "v1.2": 0.1}
    counts = Counter(
        version_for_bucket(weights, bucket_of("calling_score", f"subject-{i}"))
        for i in range(100_000)
    )
    for version, weight in weights.items():
        assert abs(counts[version] / 100_000 - weight) < 0.01, (version, counts)


def test_no_weight_no_version() -> None:
    assert version_for_bucket({}, 5) is None
    assert version_for_bucket({"v1.0": 0.0}, 5) is None


weight_maps = st.dictionaries(
    st.builds(lambda a: f"v1.{a}", st.integers(0, 20)),
    st.integers(0, 100),
    min_size=1,
    max_size=6,
).filter(lambda m: sum(m.values()) > 0)


@given(weight_maps)
def test_ranges_cover_every_bucket_once(raw: dict[str, int]) -> None:
    total = sum(raw.values())
    weights = {v: w / total for v, w in raw.items()}
    ranges = bucket_ranges(weights)
    assert ranges[0][1] == 0 and ranges[-1][2] == BUCKETS
    for (_, _, end), (_, start, _) in zip(ranges, ranges[1:], strict=False):
        assert end == start
    for version, start, end in ranges:
        assert abs((end - start) / BUCKETS - weights[version]) <= 1 / BUCKETS + 1e-9


def _owners(weights: dict[str, float]) -> list[str]:
    owners: list[str] = []
    for version, start, end in bucket_ranges(weights):
        owners += [version] * (end - start)
    return owners


@given(st.integers(0, 100), st.integers(0, 100), st.integers(0, 30))
def test_one_weight_change_moves_only_the_difference(before: int, after: int, third: int) -> None:
    """Production first, then the candidate: ramping it moves exactly |delta| of subjects."""
    old = {"v1.0": 1 - before / 100, "v1.1": before / 100}
    new = {"v1.0": 1 - after / 100, "v1.1": after / 100}
    old_owners, new_owners = _owners(old), _owners(new)
    moved = sum(a != b for a, b in zip(old_owners, new_owners, strict=True))
    assert moved == abs(before - after) * BUCKETS // 100
    assert version_for_bucket(new, third * 300) == new_owners[third * 300]


@settings(deadline=None)  # a 10,000-version table per example: slow on a busy machine
@given(st.text(max_size=64), st.text(max_size=256))
def test_the_bucket_is_the_documented_hash(model_type: str, subject_id: str) -> None:
    """sha256 of `model_type NUL subject_id`, first 8 bytes big-endian, mod 10,000: the router's
    per-model-type prefix (SubjectRoutes) and the registry's `bucket_of` agree with it."""
    import hashlib

    from registry.routing import SubjectRoutes

    digest = hashlib.sha256(f"{model_type}\x00{subject_id}".encode()).digest()
    expected = int.from_bytes(digest[:8], "big") % BUCKETS
    assert bucket_of(model_type, subject_id) == expected
    # a table whose every bucket names itself: the router's one-call lookup hashes the same
    ranges = {f"v{b}.0": 1.0 for b in range(BUCKETS)}
    routes = SubjectRoutes(model_type, ranges)
    assert routes.version_of(subject_id) == f"v{bucket_of(model_type, subject_id, routes.salt)}.0"
    assert SubjectRoutes(model_type, {"v1.0": 1.0}).salt == ""  # one live version: unsalted


def test_the_salt_is_the_set_of_versions_with_traffic() -> None:
    assert salt_of({"v1.0": 1.0}) == ""
    assert salt_of({"v1.0": 1.0, "v1.1": 0.0}) == ""
    assert salt_of({"v1.10": 0.1, "v1.2": 0.9}) == "v1.2,v1.10"
    assert RouteTable({"v1.2": 0.9, "v1.3": 0.1}).salt == "v1.2,v1.3"


SUBJECTS = [f"subject-{i}" for i in range(20_000)]


def _served(weights: dict[str, float], version: str) -> set[str]:
    table = RouteTable(weights)
    return {s for s in SUBJECTS if table.route("calling_score", s) == version}


def test_within_one_candidates_ramp_only_production_subjects_move_to_it() -> None:
    at_10 = _served({"v1.0": 0.9, "v1.1": 0.1}, "v1.1")
    at_50 = _served({"v1.0": 0.5, "v1.1": 0.5}, "v1.1")
    at_100 = _served({"v1.1": 1.0}, "v1.1")
    assert at_10 <= at_50 <= at_100  # nobody goes back to production on the way up
    assert abs(len(at_10) / len(SUBJECTS) - 0.1) < 0.01
    assert abs(len(at_50) / len(SUBJECTS) - 0.5) < 0.015


def test_every_candidate_gets_a_fresh_independent_split() -> None:
    first = _served({"v1.0": 0.9, "v1.1": 0.1}, "v1.1")
    second = _served({"v1.0": 0.9, "v1.2": 0.1}, "v1.2")
    overlap = len(first & second) / len(SUBJECTS)
    # Independent splits share 0.1 * 0.1 = 1% of subjects; unsalted they shared all 10%.
    assert 0.005 < overlap < 0.02
