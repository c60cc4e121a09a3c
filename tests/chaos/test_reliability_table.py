"""RELIABILITY.md's rows: an inner pytest session proves a failing scenario writes none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.chaos.reliability import COLUMNS, Table, current_commit
from tests.streams.harness import REPO

CONFTEST = """
from tests.chaos.reliability import (
    pytest_addoption, pytest_configure, pytest_generate_tests, pytest_runtest_makereport,
    pytest_sessionfinish, record_row,
)
"""
SCENARIOS = """
from pathlib import Path
import pytest
from tests.chaos.harness import ScenarioFigures

COUNT = Path(__file__).with_name("flaky-count")


@pytest.mark.scenario("A passes")
def test_a(record_row):
    record_row(ScenarioFigures(10, "none", 0, None, 1.5, notes="fine | with a bar"))


@pytest.mark.scenario("B fails after recording", size="ci+full")
def test_b(record_row):
    record_row(ScenarioFigures(10, "none", 0, 0))
    assert False


@pytest.mark.scenario("C passes every other run")
def test_c(record_row):
    runs = int(COUNT.read_text()) if COUNT.exists() else 0
    COUNT.write_text(str(runs + 1))
    record_row(ScenarioFigures(1, "x", 0, 0))
    assert runs % 2 == 0
"""


def inner_pytest(directory: Path, table: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RELEARN_RELIABILITY_FILE": str(table),
        "RELEARN_CHAOS_SIZE": "ci",
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(directory), "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_only_passing_scenarios_write_rows_and_repeats_count_every_run(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_scenarios.py").write_text(SCENARIOS)
    table = tmp_path / "RELIABILITY.md"
    table.write_text(
        "# Reliability\n\n<!-- chaos:begin -->\n| scenario | size | lost |\n|---|---|---|\n"
        "| 0 a stale row without a commit | ci | 0 |\n<!-- chaos:end -->\n\nafter the table\n"
    )

    once = inner_pytest(suite, table)
    assert once.returncode == 1, once.stdout  # B fails
    rows = Table.parse(table.read_text()).rows
    assert set(rows) == {("A passes", "ci"), ("C passes every other run", "ci")}, rows
    a = rows[("A passes", "ci")]
    assert a["passed at"] == current_commit() != "unknown"
    assert a["duplicated"] == "n/a" and a["lost"] == "0" and a["recovery (s)"] == "1.5"
    assert a["repeated"] == "-" and a["notes"] == "fine / with a bar"
    assert len(a["date (UTC)"]) == len("2026-01-01 00:00")
    assert table.read_text().endswith("after the table\n")

    (suite / "flaky-count").unlink()
    repeated = inner_pytest(suite, table, "--repeat-scenarios", "4")
    assert "12 failed" not in repeated.stdout and "6 failed, 6 passed" in repeated.stdout, (
        repeated.stdout
    )
    rows = Table.parse(table.read_text()).rows
    commit = current_commit()
    assert rows[("A passes", "ci")]["repeated"].startswith(f"passed 4/4 at {commit} (")
    assert rows[("C passes every other run", "ci")]["repeated"].startswith(
        f"passed 2/4 at {commit}"
    )
    failed = rows[("B fails after recording", "ci+full")]
    assert failed["repeated"].startswith(f"passed 0/4 at {commit}")
    assert failed["passed at"] == "-" and failed["lost"] == "-"
    assert list(failed) == list(COLUMNS)
