"""`relearn simulate` against the real broker: what lands on outcome-events matches the ground truth."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.clients import make_consumer
from contracts.model_types import ModelTypeCatalog
from contracts.topics import Topics
from contracts.validation import OutcomeRejected, validate_outcome
from relearn.cli import main

pytestmark = pytest.mark.integration


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list:
    import time

    consumer = make_consumer(bootstrap, f"sim-test-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            messages.append(message)
        # Nothing more should come: the count must be exact, not at least.
        extra = consumer.poll(1.0)
        if extra is not None and not extra.error():
            messages.append(extra)
    finally:
        consumer.close()
    return messages


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

    messages = consume_all(kafka_bootstrap, topics.outcome_events, expected=300)
    assert len(messages) == 300
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
