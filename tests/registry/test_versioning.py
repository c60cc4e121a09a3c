"""Version numbers: parsing, next minor, hints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.versions import parse_version, sort_versions
from registry.errors import VersionsExhausted
from registry.versioning import assign_version, next_version

versions = st.builds(lambda a, b: f"v{a}.{b}", st.integers(0, 999), st.integers(0, 999))


def test_parse_and_next() -> None:
    assert parse_version("v1.2") == (1, 2)
    assert next_version([]) == "v1.0"
    assert next_version(["v1.2", "v1.10", "v1.9"]) == "v1.11"
    assert sort_versions(["v1.10", "v1.9", "v0.3"]) == ["v0.3", "v1.9", "v1.10"]


@pytest.mark.parametrize("bad", ["1.2", "v1", "v01.2", "v1.2.3", "v-1.0", ""])
def test_parse_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_version(bad)


def test_hint_used_only_when_free_and_valid() -> None:
    assert assign_version(["v1.0"], "v2.0") == "v2.0"
    assert assign_version(["v1.0", "v2.0"], "v2.0") == "v2.1"
    assert assign_version(["v1.0"], "model-v7") == "v1.1"


@given(st.sets(versions, max_size=30), st.one_of(st.none(), versions))
def test_assigned_version_is_always_new(existing: set[str], hint: str | None) -> None:
    assigned = assign_version(existing, hint)
    assert assigned not in existing
    if existing and assigned != hint:
        assert parse_version(assigned) > max(parse_version(v) for v in existing)


def test_the_minors_used_up_by_a_hint_move_on_to_the_next_major() -> None:
    # a hint may take v0.999999; the next number used to be v0.1000000, which no parser accepts
    assert next_version(["v0.999999"]) == "v1.0"
    assert assign_version(["v1.0", "v1.999999"], None) == "v2.0"
    with pytest.raises(VersionsExhausted):
        next_version(["v999999.999999"])
