"""The next free version number of a model type (pure); parsing and ordering are the contract's."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.versions import FIRST_VERSION, MAX_NUMBER, format_version, is_version, parse_version
from registry.errors import VersionsExhausted


def next_version(existing: Iterable[str]) -> str:
    """The next minor after the highest existing version; `v1.0` when there is none; the next
    major once the minors are used up (a hint may have taken `v1.999999`)."""
    numbers = [parse_version(v) for v in existing]
    if not numbers:
        return FIRST_VERSION
    major, minor = max(numbers)
    if minor < MAX_NUMBER:
        return format_version(major, minor + 1)
    if major < MAX_NUMBER:
        return format_version(major + 1, 0)
    raise VersionsExhausted(f"no version after {format_version(major, minor)} is left")


def assign_version(existing: Iterable[str], hint: str | None) -> str:
    """The hinted version when it is well-formed and free, otherwise `next_version`."""
    taken = set(existing)
    if hint is not None and is_version(hint) and hint not in taken:
        return hint
    return next_version(taken)
