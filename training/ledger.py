"""The trainer's durable record of each command's outcome: a redelivery never trains twice."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

OutcomeKind = Literal["deployed", "rejected"]


@dataclass(frozen=True)
class RecordedOutcome:
    """The exact message that settled a command: republished as-is when the command comes again."""

    command_id: str
    kind: OutcomeKind
    event_id: str  # the deployment_id, or the rejection event's event_id
    topic: str
    key: bytes
    value: bytes


class CommandLedger(Protocol):
    def outcome_of(self, command_id: str) -> RecordedOutcome | None: ...

    def record(self, outcome: RecordedOutcome) -> RecordedOutcome:
        """Store the outcome unless one exists; returns the one stored (the first writer wins)."""
        ...


class SqliteCommandLedger:
    """One SQLite file under the state dir; the primary key settles which outcome a command has."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS command_outcomes ("
            " command_id TEXT PRIMARY KEY, kind TEXT NOT NULL, event_id TEXT NOT NULL,"
            " topic TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
            " recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )

    def outcome_of(self, command_id: str) -> RecordedOutcome | None:
        row = self._connection.execute(
            "SELECT command_id, kind, event_id, topic, key, value FROM command_outcomes"
            " WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        return RecordedOutcome(row[0], row[1], row[2], row[3], bytes(row[4]), bytes(row[5]))

    def record(self, outcome: RecordedOutcome) -> RecordedOutcome:
        self._connection.execute(
            "INSERT OR IGNORE INTO command_outcomes (command_id, kind, event_id, topic, key, value)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                outcome.command_id,
                outcome.kind,
                outcome.event_id,
                outcome.topic,
                outcome.key,
                outcome.value,
            ),
        )
        stored = self.outcome_of(outcome.command_id)
        assert stored is not None
        return stored

    def close(self) -> None:
        self._connection.close()
