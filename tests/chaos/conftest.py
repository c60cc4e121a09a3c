"""The chaos suite's hooks: full-only scenarios, and RELIABILITY.md rows from passing scenarios only."""

from __future__ import annotations

import pytest

from tests.chaos.harness import FULL

# A row reaches RELIABILITY.md only through these (tests/chaos/reliability.py says how).
from tests.chaos.reliability import (  # noqa: F401 - pytest finds hooks and fixtures by name
    pytest_addoption,
    pytest_configure,
    pytest_generate_tests,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    record_row,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenarios marked full_only run in `make chaos` only; CI deselects them (RELIABILITY.md
    says why for each: too heavy for CI's two cores, or an open streams issue)."""
    if FULL:
        return
    kept = [item for item in items if item.get_closest_marker("full_only") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
