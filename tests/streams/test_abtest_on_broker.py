"""The live A/B test on a real broker: a bad candidate is rolled back, a good one ramped up."""

from __future__ import annotations

import random
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from contracts.events import RegistryEventOccurred, RegistryEventType, to_json
from contracts.topics import Topics
from tests.streams.harness import StreamsWorker, get_json, produce, read_topic, wait_until

pytestmark = pytest.mark.integration


def _registry_event(
    kind: RegistryEventType, model_type: str, version: str, status: str, weights: dict[str, float]
) -> tuple[bytes, bytes]:
    event = RegistryEventOccurred(
        type=kind, model_type=model_type, version=version, status=status, weights=weights
    )
    return model_type.encode(), to_json(event)


def _outcomes(
    model_type: str, rates: dict[str, float], count: int, seed: int
) -> list[tuple[bytes, bytes]]:
    """Outcomes served now and on (no served_at: the test-independent kind)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    messages = []
    for i in range(count):
        version = rng.choice(sorted(rates))
        positive = rng.random() < rates[version]
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "model_type": model_type,
            "model_version": version,
            "subject_id": f"s{i}",
            "features": [0.5] * 23,
            "prediction": 0.5,
            "outcome_score": float(positive),
            "positive_outcome": positive,
            "occurred_at": now,
        }
        messages.append((event["subject_id"].encode(), orjson.dumps(event)))
    return messages


WINDOW = 4.0  # seconds of event time: the model types file of the test below


def _delayed_outcomes(
    model_type: str, rates: dict[str, float], count: int, seed: int, start: datetime
) -> list[tuple[bytes, bytes]]:
    """Served from `start` on at 100 per event-time second, split 90/10 by subject; positives
    reported within 0.3 s, negatives when the window closes; in occurred_at order."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        served = start + timedelta(seconds=i / 100)
        subject = f"s{rng.randrange(20_000)}"
        version = "v1.1" if zlib.crc32(subject.encode()) % 10 == 0 else "v1.0"
        positive = rng.random() < rates[version]
        occurred = served + timedelta(seconds=rng.uniform(0, 0.3) if positive else WINDOW)
        events.append(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "model_type": model_type,
                "model_version": version,
                "subject_id": subject,
                "features": [0.5] * 23,
                "prediction": 0.9,
                "outcome_score": float(positive),
                "positive_outcome": positive,
                "served_at": served.isoformat(),
                "occurred_at": occurred.isoformat(),
            }
        )
    events.sort(key=lambda e: e["occurred_at"])
    # One key per model type: its outcomes reach the worker in this (event time) order.
    return [(model_type.encode(), orjson.dumps(e)) for e in events]


def _commands(bootstrap: str, topics: Topics) -> list[dict]:
    return [orjson.loads(m.value()) for m in read_topic(bootstrap, topics.registry_commands)]


def test_delayed_outcomes_aa_not_promoted_worse_rolled_back(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """Issue 14 end to end: positives reported at once, negatives when a short window closes.
    The old rule promoted the A/A candidate (its early outcomes were the fast positives) and
    rolled the worse one back only through that artefact; counted by served_at once matured,
    the A/A candidate is not promoted and the worse one is rolled back on its rate."""
    types_file = tmp_path / "model_types.yaml"
    types_file.write_text(
        "model_types:\n"
        + "".join(
            f"  - {{name: {name}, feature_count: 23, target: {target}, loss: {loss},"
            f" outcome_window_seconds: {WINDOW}}}\n"
            for name, target, loss in (
                ("calling_score", "outcome_score", "mse"),
                ("outcome_prediction", "positive_outcome", "bce"),
            )
        )
    )
    worker = StreamsWorker.alone(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        RELEARN_MODEL_TYPES_FILE=str(types_file),
        RELEARN_ABTEST_WATERMARK_ALLOWANCE_SECONDS="0.5",
        RELEARN_RETRAIN_SAMPLE_THRESHOLD="1000000",
    )
    staged = {"v1.0": 0.9, "v1.1": 0.1}
    produce(
        kafka_bootstrap,
        topics.registry_events,
        [
            _registry_event(
                RegistryEventType.VERSION_PROMOTED, t, "v1.0", "production", {"v1.0": 1}
            )
            for t in ("calling_score", "outcome_prediction")
        ]
        + [
            _registry_event(RegistryEventType.VERSION_REGISTERED, t, "v1.1", "staging", staged)
            for t in ("calling_score", "outcome_prediction")
        ],
    )
    try:
        worker.start()
        worker.wait_web()
        wait_until(
            lambda: (get_json(f"{worker.url}/healthz") or {}).get("registry_events_seen") == 4,
            30,
            "registry events not followed",
        )
        start = datetime.now(UTC) + timedelta(seconds=1)  # served after the step went live
        produce(
            kafka_bootstrap,
            topics.outcome_events,
            _delayed_outcomes("calling_score", {"v1.0": 0.6, "v1.1": 0.3}, 8000, 1, start)
            + _delayed_outcomes("outcome_prediction", {"v1.0": 0.5, "v1.1": 0.5}, 8000, 2, start),
        )

        def counted() -> dict | None:
            shown = get_json(f"{worker.url}/abtest/outcome_prediction") or {}
            total = (shown.get("candidate") or {}).get("samples", 0) + (
                shown.get("baseline") or {}
            ).get("samples", 0)
            return shown if total == 8000 else None

        aa = wait_until(counted, 120, "the A/A outcomes not all in the test")
        # Every cohort matured but the last window's: the test looked at least once.
        assert aa["candidate"]["matured"] >= 450 and aa["look"] >= 1
        assert aa["late"] == 0 and aa["missing_served_at"] == 0
        assert aa["decision"] == "continue", aa["statistics"]

        rollbacks = wait_until(
            lambda: [
                c for c in _commands(kafka_bootstrap, topics) if c["model_type"] == "calling_score"
            ],
            120,
            "the worse candidate not rolled back",
        )
        assert [(c["type"], c["version"]) for c in rollbacks] == [("rollback", "v1.1")]
        evidence = rollbacks[0]["evidence"]
        assert evidence["verdict"] == "rollback"
        assert evidence["rate_z"] <= -evidence["boundaries"]["rollback"]
        assert evidence["candidate_rate"] < evidence["production_rate"]
        assert evidence["matured_candidate"] >= 450
        shown = get_json(f"{worker.url}/abtest/calling_score")
        assert shown["decision"] == "rollback" and shown["statistics"] == evidence
        assert not [
            c for c in _commands(kafka_bootstrap, topics) if c["model_type"] == "outcome_prediction"
        ]
    finally:
        worker.stop()


def test_a_starting_worker_reads_the_registry_before_it_counts(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """A canary is under test, and registry-events is long (20,000 records). A worker that
    consumed before it had read them all saw no canary and fired the threshold retrain that a
    running canary holds; it now joins the group only once it has read registry-events."""
    staged = {"v1.0": 0.9, "v1.1": 0.1}
    history = [
        _registry_event(
            RegistryEventType.VERSION_PROMOTED, "calling_score", "v1.0", "production", {"v1.0": 1}
        ),
        _registry_event(
            RegistryEventType.VERSION_REGISTERED, "calling_score", "v1.1", "staging", staged
        ),
    ]
    history += [
        _registry_event(
            RegistryEventType.TRAFFIC_CHANGED, "calling_score", "v1.1", "staging", staged
        )
    ] * 20_000
    produce(kafka_bootstrap, topics.registry_events, history)
    time.sleep(0.1)  # outcomes strictly after the candidate got traffic
    produce(
        kafka_bootstrap,
        topics.outcome_events,
        _outcomes("calling_score", {"v1.0": 0.5, "v1.1": 0.5}, 250, seed=3),
    )
    worker = StreamsWorker.alone(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        RELEARN_RETRAIN_SAMPLE_THRESHOLD="200",
    )
    try:
        worker.start()
        worker.wait_web()

        def counted() -> dict | None:
            view = get_json(f"{worker.url}/samples/calling_score") or {}
            done = view.get("new_samples") == 250 or view.get("retrain_commands", 0) > 0
            return view if done else None

        view = wait_until(counted, 60, "outcomes not counted")
        assert view["retrain_commands"] == 0, "the threshold fired while a canary was under test"
        assert read_topic(kafka_bootstrap, topics.retrain_commands) == []
    finally:
        worker.stop()
