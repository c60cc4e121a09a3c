"""Priority 2: 1% malformed outcome events plus malformed records on every internal topic, with
streams, registry and trainer running: each poison record ends where its consumer documents it
(a dead-letter topic with its reason, or a rejection event), lag returns to 0, good events are
exact and no service dies.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from bus.clients import make_producer
from contracts.events import RegistryEventOccurred, RegistryEventType
from contracts.topics import Topics
from streams.testing import outcome_events
from tests.chaos.harness import (
    Registry,
    ScenarioFigures,
    Trainer,
    elapsed_since,
    forwarded_ids,
    size,
)
from tests.streams.harness import consumer_lag, produce, read_topic, wait_until
from tests.streams.test_streams_on_broker import (
    _all_counted,
    _assert_tables_equal_truth,
    _workers,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(int(size(600, 3_600)))]

# Records no producer of the contract writes: not JSON, empty, wrong shape, wrong types, huge.
POISON: tuple[bytes, ...] = (
    b"not json at all",
    b"",
    b"[]",
    b'{"command_id": 5, "type": "nonsense"}',
    orjson.dumps({"model_type": "calling_score", "deployment_id": "x" * 10_000}),
    b'{"model_type": "calling_score"' + b" " * 70_000 + b"}",
)


def poison_for(topic: str) -> list[tuple[bytes, bytes]]:
    return [(b"calling_score", value) for value in POISON]


@pytest.mark.scenario("2 poison on every topic")
def test_poison_on_every_topic_lands_with_reasons_and_good_events_stay_exact(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    messages, truth = outcome_events(int(size(6_000, 100_000)), seed=31, invalid_rate=0.01)
    (worker,) = _workers(kafka_bootstrap, topic_prefix, tmp_path, 1)
    registry = Registry.for_scenario(kafka_bootstrap, topic_prefix, tmp_path)
    trainer_group = f"chaos-trainer-{uuid.uuid4().hex[:8]}"
    # The trainer rejects every real command as too_few_samples: cheap, and it still reads
    # the whole training-samples window, poison included.
    trainer = Trainer(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "trainer",
        trainer_group,
        registry.url,
        RELEARN_TRAINING_MIN_SAMPLES="100000000",
    )
    services = [worker, registry, trainer]
    try:
        worker.start()
        registry.start()
        trainer.start()
        worker.wait_web()
        registry.wait_ready()
        internal = {
            topics.training_samples: poison_for(topics.training_samples),
            topics.retrain_commands: poison_for(topics.retrain_commands),
            topics.model_deployed: poison_for(topics.model_deployed),
            topics.registry_commands: poison_for(topics.registry_commands),
            topics.registry_events: poison_for(topics.registry_events),
        }
        half = len(messages) // 2
        produce(kafka_bootstrap, topics.outcome_events, messages[:half])
        for topic, records in internal.items():
            produce(kafka_bootstrap, topic, records)
        produce(kafka_bootstrap, topics.outcome_events, messages[half:])
        poison_sent = truth.invalid + sum(len(r) for r in internal.values())

        wait_until(lambda: _all_counted(worker, truth), 120, "good events not all counted")
        _assert_tables_equal_truth(worker, truth)
        # what streams forwarded (its records carry source headers; the poison does not)
        ids = forwarded_ids(kafka_bootstrap, topics.training_samples, truth.valid_ids)
        assert (ids.lost, ids.duplicated, ids.unexpected) == (0, 0, 0), ids
        outcome_dead = read_topic(kafka_bootstrap, topics.outcome_events_dlq)
        assert (
            len(
                {
                    dict(m.headers())["source.offset"] + dict(m.headers())["source.partition"]
                    for m in outcome_dead
                }
            )
            == truth.invalid
        )
        assert all(dict(m.headers()).get("error.reason") for m in outcome_dead)

        # registry: model-deployed and registry-commands poison in the internal DLQ, with reasons
        expected_internal = len(internal[topics.model_deployed]) + len(
            internal[topics.registry_commands]
        )
        dead = wait_until(
            lambda: (lambda d: d if len(d) >= expected_internal else None)(
                read_topic(kafka_bootstrap, topics.internal_dlq)
            ),
            60,
            "registry poison not dead-lettered",
        )
        reasons = [dict(m.headers())["error.reason"].decode() for m in dead]
        sources = {dict(m.headers())["source.topic"].decode() for m in dead}
        assert len(dead) == expected_internal and all(reasons), reasons
        assert sources == {topics.model_deployed, topics.registry_commands}

        # trainer: every unreadable retrain command is rejected on registry-events with its reason
        def rejections() -> list[RegistryEventOccurred] | None:
            found = []
            for m in read_topic(kafka_bootstrap, topics.registry_events):
                try:
                    event = RegistryEventOccurred.model_validate_json(m.value())
                except ValueError:
                    continue  # the registry-events poison itself
                if event.type is RegistryEventType.DEPLOYMENT_REJECTED:
                    found.append(event)
            return found if len(found) >= len(POISON) else None

        rejected = wait_until(rejections, 90, "trainer did not reject the poison commands")
        assert all(e.reason for e in rejected)

        # lag returns to 0 on every consumer group, and every service is still running
        groups = [
            (f"{topic_prefix}relearn-streams", topics.outcome_events),
            (
                f"{registry.env['RELEARN_REGISTRY_CONSUMER_GROUP']}.model-deployed",
                topics.model_deployed,
            ),
            (
                f"{registry.env['RELEARN_REGISTRY_CONSUMER_GROUP']}.registry-commands",
                topics.registry_commands,
            ),
            (trainer_group, topics.retrain_commands),
        ]
        # At full size streams emits ~200 retrain commands within seconds, and the trainer
        # reads the whole training-samples window for each before rejecting it: minutes.
        drained = time.monotonic()
        for group, topic in groups:
            wait_until(
                lambda g=group, t=topic: consumer_lag(kafka_bootstrap, g, t) == 0,
                size(60, 1_200),
                f"lag of {group} on {topic} did not return to 0",
            )
        drain_seconds = elapsed_since(drained)
        dead_services = [
            s
            for s in (worker.process, registry.process, trainer.process)
            if s is None or s.poll() is not None
        ]
        assert not dead_services, "a service died on poison"
        record_row(
            ScenarioFigures(
                len(messages) + poison_sent - truth.invalid,
                f"{poison_sent} malformed ({truth.invalid} outcome, "
                f"{poison_sent - truth.invalid} internal)",
                ids.lost,
                ids.duplicated,
                None,
                notes=(
                    "outcome + model-deployed + registry-commands poison in DLQs with reasons; "
                    "retrain-commands poison rejected on registry-events; training-samples and "
                    f"registry-events poison skipped and logged; lag 0 on every group "
                    f"({drain_seconds} s after the checks above)"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        for service in services:
            service.stop()


def test_malformed_training_sample_with_source_headers_does_not_stall_streams(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """A record on training-samples that looks like streams' own (source headers) but is not a
    sample: the counting agent must skip it, not stop counting."""
    messages, truth = outcome_events(2_000, seed=37, invalid_rate=0.0, duplicate_rate=0.0)
    (worker,) = _workers(kafka_bootstrap, topic_prefix, tmp_path, 1)
    try:
        worker.start().wait_web()
        producer = make_producer(kafka_bootstrap)
        for partition in range(4):
            for value in POISON[:4]:
                producer.produce(
                    topics.training_samples,
                    key=b"calling_score",
                    value=value,
                    partition=partition,
                    headers=[("source.partition", b"0"), ("source.offset", b"0")],
                )
        assert producer.flush(30) == 0
        produce(kafka_bootstrap, topics.outcome_events, messages)
        wait_until(
            lambda: _all_counted(worker, truth),
            90,
            "good events not all counted after a malformed training sample",
        )
        _assert_tables_equal_truth(worker, truth)
        assert worker.process is not None and worker.process.poll() is None
        # each malformed sample is dead-lettered once, with its reason and where it came from
        expected = 4 * len(POISON[:4])
        dead = wait_until(
            lambda: (lambda d: d if len(d) >= expected else None)(
                read_topic(kafka_bootstrap, topics.internal_dlq)
            ),
            60,
            "malformed training samples not dead-lettered",
        )
        assert len(dead) == expected
        assert {dict(m.headers())["source.topic"].decode() for m in dead} == {
            topics.training_samples
        }
        assert all(dict(m.headers()).get("error.reason") for m in dead)
    finally:
        worker.stop()
