"""The live A/B test on a real broker: a bad candidate is rolled back, a good one ramped up."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
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


def _commands(bootstrap: str, topics: Topics) -> list[dict]:
    return [orjson.loads(m.value()) for m in read_topic(bootstrap, topics.registry_commands)]


def test_bad_candidate_rolled_back_good_candidate_ramped(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    worker = StreamsWorker.alone(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        RELEARN_ABTEST_MIN_SAMPLES="100",
        RELEARN_ROLLBACK_ALPHA="0.05",
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
        time.sleep(0.1)  # outcomes strictly after the candidate got traffic
        produce(
            kafka_bootstrap,
            topics.outcome_events,
            _outcomes("calling_score", {"v1.0": 0.6, "v1.1": 0.2}, 1500, seed=1)
            + _outcomes("outcome_prediction", {"v1.0": 0.2, "v1.1": 0.6}, 1500, seed=2),
        )

        def decided() -> list[dict]:
            commands = _commands(kafka_bootstrap, topics)
            return (
                commands
                if {c["model_type"] for c in commands} == {"calling_score", "outcome_prediction"}
                else []
            )

        commands = wait_until(decided, 120, "no A/B decision for both model types")
        by_type = {c["model_type"]: c for c in commands}
        rollback, promote = by_type["calling_score"], by_type["outcome_prediction"]
        assert rollback["type"] == "rollback" and rollback["version"] == "v1.1"
        assert rollback["evidence"]["verdict"] == "rollback"
        assert rollback["evidence"]["p_value"] <= 0.05
        assert promote["type"] == "promote" and promote["weights"] == {"v1.1": 0.5, "v1.0": 0.5}
        view = get_json(f"{worker.url}/abtest/calling_score")
        assert view["decision"] == "rollback" and view["candidate_version"] == "v1.1"

        # More outcomes in the same experiment: the decision is not emitted again.
        produce(
            kafka_bootstrap,
            topics.outcome_events,
            _outcomes("calling_score", {"v1.0": 0.6, "v1.1": 0.2}, 300, seed=3),
        )
        wait_until(
            lambda: (
                get_json(f"{worker.url}/abtest/calling_score")["candidate"]["samples"]
                > view["candidate"]["samples"]
            ),
            60,
            "later outcomes not counted",
        )
        assert (
            len(
                {
                    c["command_id"]
                    for c in _commands(kafka_bootstrap, topics)
                    if c["model_type"] == "calling_score"
                }
            )
            == 1
        )

        # The registry applies the ramp step: a new experiment, tested again, then 1.0.
        produce(
            kafka_bootstrap,
            topics.registry_events,
            [
                _registry_event(
                    RegistryEventType.TRAFFIC_CHANGED,
                    "outcome_prediction",
                    "v1.1",
                    "staging",
                    {"v1.0": 0.5, "v1.1": 0.5},
                )
            ],
        )
        wait_until(
            lambda: get_json(f"{worker.url}/healthz")["registry_events_seen"] == 5,
            30,
            "ramp event not followed",
        )
        time.sleep(0.1)
        produce(
            kafka_bootstrap,
            topics.outcome_events,
            _outcomes("outcome_prediction", {"v1.0": 0.2, "v1.1": 0.6}, 1500, seed=4),
        )
        final = wait_until(
            lambda: [
                c
                for c in _commands(kafka_bootstrap, topics)
                if c["model_type"] == "outcome_prediction"
                and c["weights"]
                and c["weights"].get("v1.1") == 1.0
            ],
            120,
            "no second ramp step",
        )
        assert final[0]["type"] == "promote" and final[0]["weights"] == {"v1.1": 1.0, "v1.0": 0.0}
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
