"""What the simulator really sent, kept on its side so end-to-end and chaos tests can compare."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class VersionDay:
    events: int = 0
    positives: int = 0
    prediction_sum: float = 0.0
    outcome_score_sum: float = 0.0
    squared_error_sum: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        n = self.events or 1
        return {
            "events": self.events,
            "positives": self.positives,
            "positive_outcome_rate": self.positives / n,
            "avg_prediction": self.prediction_sum / n,
            "avg_outcome_score": self.outcome_score_sum / n,
            "mean_squared_error": self.squared_error_sum / n,
        }


@dataclass
class GroundTruth:
    """Counts of messages by kind, and of valid events per model type, version and UTC day."""

    scenario: str
    seed: int
    world_seed: int
    events_requested: int
    messages_produced: int = 0
    valid_events: int = 0
    duplicates: int = 0
    invalid_events: int = 0
    delivery_failures: int = 0
    visits: int = 0
    outcomes_unreported: int = 0  # hostile world: served, outcome not known when the run ended
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    valid: dict[str, dict[str, dict[str, VersionDay]]] = field(default_factory=dict)
    served_visits: Counter[str] = field(default_factory=Counter)  # "type/version" -> visits
    faults_written: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""

    def record_valid(
        self,
        model_type: str,
        version: str,
        day: str,
        positive: bool,
        prediction: float,
        outcome_score: float,
    ) -> None:
        cell = self.valid.setdefault(model_type, {}).setdefault(version, {})
        row = cell.setdefault(day, VersionDay())
        row.events += 1
        row.positives += int(positive)
        row.prediction_sum += prediction
        row.outcome_score_sum += outcome_score
        row.squared_error_sum += (prediction - outcome_score) ** 2
        self.valid_events += 1
        self.messages_produced += 1

    def record_invalid(self, reason: str) -> None:
        self.invalid_by_reason[reason] += 1
        self.invalid_events += 1
        self.messages_produced += 1

    def record_duplicate(self) -> None:
        self.duplicates += 1
        self.messages_produced += 1

    def valid_by_version(self, model_type: str) -> dict[str, int]:
        """Valid events per version of one model type, all days together."""
        return {
            version: sum(row.events for row in days.values())
            for version, days in self.valid.get(model_type, {}).items()
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "world_seed": self.world_seed,
            "events_requested": self.events_requested,
            "messages_produced": self.messages_produced,
            "valid_events": self.valid_events,
            "duplicates": self.duplicates,
            "invalid_events": self.invalid_events,
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
            "delivery_failures": self.delivery_failures,
            "visits": self.visits,
            "outcomes_unreported": self.outcomes_unreported,
            "served_visits": dict(sorted(self.served_visits.items())),
            "valid": {
                model_type: {
                    version: {day: row.as_dict() for day, row in sorted(days.items())}
                    for version, days in sorted(versions.items())
                }
                for model_type, versions in sorted(self.valid.items())
            },
            "faults_written": self.faults_written,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        partial.replace(path)
