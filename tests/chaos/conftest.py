"""The chaos suite's session hooks: fresh figures per run, RELIABILITY.md's table rewritten at the end."""

from __future__ import annotations

import json
import re

import pytest

from tests.chaos.harness import FULL, REPO, RESULTS_FILE

RELIABILITY = REPO / "RELIABILITY.md"
BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
HEADER = (
    "| scenario | size | events sent | faults injected | lost | duplicated | recovery (s) "
    "| run (s) | notes |\n|---|---|---|---|---|---|---|---|---|"
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


def pytest_sessionstart(session: pytest.Session) -> None:
    RESULTS_FILE.unlink(missing_ok=True)


def _row(figures: dict[str, object]) -> str:
    recovery = figures["recovery_s"]
    cells = [
        figures["scenario"],
        figures["size"],
        figures["events"],
        figures["faults"],
        figures["lost"],
        figures["duplicated"],
        "-" if recovery is None else recovery,
        figures["seconds"],
        figures["notes"],
    ]
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def table_with(existing: str, results: list[dict[str, object]]) -> str:
    """The generated table: this run's rows replace same-named rows, others are kept."""
    rows: dict[str, str] = {}
    match = re.search(re.escape(BEGIN) + r"(.*?)" + re.escape(END), existing, re.S)
    if match:
        for line in match.group(1).splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if (
                line.startswith("| ")
                and cells[0] not in {"scenario", ""}
                and not set(cells[0]) <= {"-"}
            ):
                rows[f"{cells[0]}|{cells[1]}"] = line.strip()
    for figures in results:
        rows[f"{figures['scenario']}|{figures['size']}"] = _row(figures)
    return "\n".join([BEGIN, HEADER, *(rows[k] for k in sorted(rows)), END])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RESULTS_FILE.exists() or not RELIABILITY.exists():
        return
    results = [json.loads(line) for line in RESULTS_FILE.read_text().splitlines() if line]
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    if not results:
        return
    text = RELIABILITY.read_text()
    table = table_with(text, results)
    if BEGIN in text and END in text:
        text = re.sub(
            re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: table, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + table + "\n"
    RELIABILITY.write_text(text)
    RESULTS_FILE.unlink(missing_ok=True)  # a session starting from a parent conftest skips start
