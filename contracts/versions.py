"""Version numbers `v<major>.<minor>`: the pattern, parsing and ordering every service shares (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import Field

VERSION_PATTERN = r"^v(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$"
Version = Annotated[str, Field(pattern=VERSION_PATTERN)]

_VERSION = re.compile(VERSION_PATTERN)
FIRST_VERSION = "v1.0"
MAX_NUMBER = 999_999  # six digits each, as the pattern allows
# The version a prediction made before any model exists is reported under (never registered).
NO_MODEL_VERSION = "v0.0"


def parse_version(version: str) -> tuple[int, int]:
    """`"v1.2"` -> `(1, 2)`; raises ValueError for anything else."""
    match = _VERSION.fullmatch(version)  # `$` alone would also match before a final "\n"
    if match is None:
        raise ValueError(f"not a version (expected v<major>.<minor>): {version!r}")
    return int(match.group(1)), int(match.group(2))


def is_version(version: str) -> bool:
    return _VERSION.fullmatch(version) is not None


def format_version(major: int, minor: int) -> str:
    return f"v{major}.{minor}"


def version_order(version: str) -> tuple[int, int]:
    """A sort key that never raises: a malformed version sorts before every real one."""
    try:
        return parse_version(version)
    except ValueError:
        return (-1, -1)


def sort_versions(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=parse_version)


def newest_version(versions: Iterable[str]) -> str | None:
    """The highest version, or None when there is none."""
    return max(versions, key=version_order, default=None)
