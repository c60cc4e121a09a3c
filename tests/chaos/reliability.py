"""RELIABILITY.md's table: rows written only by passing scenarios, stamped with commit, date, size.

The pytest hooks at the bottom are imported by `tests/chaos/conftest.py` (and by the self-test
in `test_reliability_table.py`, which runs them in an inner pytest session on a scratch file).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from tests.chaos.harness import REPO, SIZE_NAME, ScenarioFigures

BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
COLUMNS = (
    "scenario",
    "size",
    "passed at",
    "date (UTC)",
    "repeated",
    "events sent",
    "faults injected",
    "lost",
    "duplicated",
    "recovery (s)",
    "run (s)",
    "notes",
)

ROWS = pytest.StashKey[list[ScenarioFigures]]()
TALLY = pytest.StashKey[dict[str, list[int]]]()


def reliability_file() -> Path:
    """RELIABILITY.md, or the scratch file the self-test names."""
    return Path(os.environ.get("RELEARN_RELIABILITY_FILE", REPO / "RELIABILITY.md"))


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return done.stdout.strip()


def current_commit() -> str:
    """`git rev-parse --short HEAD`, "+dirty" when a tracked file differs from it (the table
    itself excepted: it changes with every row)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        changed = _git(
            "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)RELIABILITY.md"
        )
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "unknown"
    return head + ("+dirty" if changed else "")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M")


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    return str(value).replace("|", "/").replace("\n", " ")


def figures_cells(
    scenario: str, size: str, figures: ScenarioFigures, commit: str, date: str
) -> dict[str, str]:
    """The cells of a passing run's row (its repeat count is kept from the table)."""
    return {
        "scenario": scenario,
        "size": size,
        "passed at": commit,
        "date (UTC)": date,
        "repeated": "-",
        "events sent": _cell(figures.events),
        "faults injected": _cell(figures.faults),
        "lost": _cell(figures.lost),
        "duplicated": _cell(figures.duplicated),
        "recovery (s)": "-" if figures.recovery_s is None else _cell(figures.recovery_s),
        "run (s)": _cell(figures.seconds),
        "notes": _cell(figures.notes),
    }


@dataclass
class Table:
    """The rows between the markers, keyed by (scenario, size); rows of another layout (no
    commit) are dropped, never carried over."""

    rows: dict[tuple[str, str], dict[str, str]]

    @classmethod
    def parse(cls, text: str) -> Table:
        rows: dict[tuple[str, str], dict[str, str]] = {}
        match = re.search(re.escape(BEGIN) + r"(.*?)" + re.escape(END), text, re.S)
        lines = [line.strip() for line in match.group(1).splitlines()] if match else []
        lines = [line for line in lines if line.startswith("|")]
        if not lines:
            return cls(rows)
        header = tuple(c.strip() for c in lines[0].strip("|").split("|"))
        if header != COLUMNS:
            return cls(rows)
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == len(COLUMNS):
                row = dict(zip(COLUMNS, cells, strict=True))
                rows[(row["scenario"], row["size"])] = row
        return cls(rows)

    def with_pass(self, row: dict[str, str]) -> Table:
        key = (row["scenario"], row["size"])
        kept = self.rows.get(key, {}).get("repeated", "-")
        return Table({**self.rows, key: {**row, "repeated": kept}})

    def with_repeats(self, scenario: str, size: str, cell: str) -> Table:
        """A repeat count on the scenario's row; a scenario that never passed gets a row of
        its own with no figures."""
        key = (scenario, size)
        row = self.rows.get(key) or {c: "-" for c in COLUMNS} | {
            "scenario": scenario,
            "size": size,
            "notes": "no passing run recorded",
        }
        return Table({**self.rows, key: {**row, "repeated": cell}})

    def render(self) -> str:
        lines = [
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
            *(
                "| " + " | ".join(self.rows[k][c] for c in COLUMNS) + " |"
                for k in sorted(self.rows)
            ),
        ]
        return "\n".join([BEGIN, *lines, END])


def update_file(path: Path, change: Callable[[Table], Table]) -> None:
    text = path.read_text() if path.exists() else ""
    table = change(Table.parse(text)).render()
    if BEGIN in text and END in text:
        text = re.sub(
            re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: table, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + table + "\n"
    path.write_text(text)


# -- pytest hooks and fixtures -----------------------------------------------------------------


def scenario_name(item: pytest.Item) -> str | None:
    """The name the scenario declares (`@pytest.mark.scenario("...")`), its parameters filled in."""
    marker = item.get_closest_marker("scenario")
    if marker is None:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    return str(marker.args[0]).format(**params)


def scenario_size(item: pytest.Item) -> str:
    """ "ci" or "full" (RELEARN_CHAOS_SIZE), or the marker's size="ci+full" for a scenario whose
    size does not change."""
    marker = item.get_closest_marker("scenario")
    return str(marker.kwargs.get("size", SIZE_NAME)) if marker else SIZE_NAME


def repeat_count(config: pytest.Config) -> int:
    return int(config.getoption("repeat_scenarios", default=1) or 1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--repeat-scenarios",
        type=int,
        default=1,
        help="run every chaos scenario N times in a row and write its pass count to RELIABILITY.md",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(name): a RELIABILITY.md row, written only when the test passes"
    )
    config.stash[TALLY] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    count = repeat_count(metafunc.config)
    if count > 1 and metafunc.definition.get_closest_marker("scenario") is not None:
        metafunc.fixturenames.append("scenario_run")
        metafunc.parametrize(
            "scenario_run", range(1, count + 1), ids=lambda n: f"run{n}of{count}", scope="function"
        )


@pytest.fixture
def record_row(request: pytest.FixtureRequest) -> Callable[[ScenarioFigures], None]:
    """Keeps the test's figures; they reach RELIABILITY.md only if the test's call phase passes."""
    if scenario_name(request.node) is None:
        raise pytest.UsageError(f"{request.node.nodeid} records a row but has no scenario marker")
    rows = request.node.stash.setdefault(ROWS, [])
    return rows.append


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    name = scenario_name(item)
    if name is None:
        return report
    if report.when == "call" and report.passed:
        commit, date = current_commit(), utc_now()
        for figures in item.stash.get(ROWS, []):
            cells = figures_cells(name, scenario_size(item), figures, commit, date)
            update_file(reliability_file(), partial(Table.with_pass, row=cells))
    # a run counts once: at its call phase, or at a setup that failed or skipped
    if report.when == "call" or (report.when == "setup" and not report.passed):
        tally = item.config.stash[TALLY].setdefault(f"{name}|{scenario_size(item)}", [0, 0])
        tally[0] += int(report.when == "call" and report.passed)
        tally[1] += 1
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under --repeat-scenarios N: each scenario that ran all N times gets "passed k/N at <commit>"."""
    count = repeat_count(session.config)
    if count <= 1 or exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    commit, date = current_commit(), utc_now()
    for key, (passed, runs) in session.config.stash[TALLY].items():
        if runs != count:
            continue  # an interrupted series says nothing
        scenario, size = key.rsplit("|", 1)
        cell = f"passed {passed}/{runs} at {commit} ({date})"
        update_file(
            reliability_file(), partial(Table.with_repeats, scenario=scenario, size=size, cell=cell)
        )
