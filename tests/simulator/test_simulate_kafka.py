"""`relearn simulate` against the real broker: what lands on outcome-events matches the ground truth."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.model_types import ModelTypeCatalog
from contracts.topics import Topics
from contracts.validation import OutcomeRejected, validate_outcome
from relearn.cli import main
from tests.streams.harness import read_topic, topic_end_offsets

pytestmark = pytest.mark.integration


def test_simulate_cli_produces_exactly_its_ground_truth(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("RELEARN_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("RELEARN_FAULTS_DIR", str(tmp_path / "faults"))
    truth_path = tmp_path / "truth.json"
    code = main(
        [
            "simulate",
            "--scenario",
            "aa",
            "--events",
            "300",
            "--rate",
            "0",
            "--seed",
            "5",
            "--offline",
            "--invalid-fraction",
            "0.1",
            "--duplicate-fraction",
            "0.1",
            "--ground-truth",
            str(truth_path),
            "--no-progress",
        ]
    )
    assert code == 0
    truth = json.loads(truth_path.read_text())
    assert truth["messages_produced"] == 300
    assert truth["delivery_failures"] == 0

    # Read by assignment up to each partition's end, not through a consumer group: a group's
    # join and rebalances under a busy broker made an earlier count come up short with no clue.
    ends = topic_end_offsets(kafka_bootstrap, topics.outcome_events)
    assert sum(ends.values()) == 300, f"the broker holds {ends} (partition: end offset)"
    messages = read_topic(kafka_bootstrap, topics.outcome_events)
    assert len(messages) == 300, f"read {len(messages)} of the {ends} the broker holds"
    catalog, now = ModelTypeCatalog(), datetime.now(UTC)
    valid_ids: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for message in messages:
        try:
            event = validate_outcome(message.value(), catalog, now)
        except OutcomeRejected as exc:
            rejected[exc.reason.value] += 1
            continue
        assert message.key().decode() == event.subject_id
        assert event.model_version == "v0.0"
        valid_ids[str(event.event_id)] += 1
    assert len(valid_ids) == truth["valid_events"]
    assert sum(valid_ids.values()) - len(valid_ids) == truth["duplicates"]
    assert dict(rejected) == truth["invalid_by_reason"]
    days = truth["valid"]["calling_score"]["v0.0"]
    assert sum(day["events"] for day in days.values()) == truth["valid_events"]
