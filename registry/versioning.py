"""Version numbers `v<major>.<minor>`: parsing, ordering and the next free number (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from registry.errors import VersionsExhausted

_VERSION = re.compile(r"^v(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
FIRST_VERSION = "v1.0"
MAX_NUMBER = 999_999  # six digits each, as the contract's version pattern allows


def parse_version(version: str) -> tuple[int, int]:
    """`"v1.2"` -> `(1, 2)`; raises ValueError for anything else."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not a version (expected v<major>.<minor>): {version!r}")
    return int(match.group(1)), int(match.group(2))


def is_version(version: str) -> bool:
    return _VERSION.match(version) is not None


def format_version(major: int, minor: int) -> str:
    return f"v{major}.{minor}"


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


def sort_versions(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=parse_version)
