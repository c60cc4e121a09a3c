"""The trainer on a real broker: deploy, redelivery, rejections, long runs, lineage reproduction."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from confluent_kafka import Message, TopicPartition

from bus.clients import make_consumer
from contracts.events import ModelDeployed, RegistryEventOccurred, to_json
from contracts.topics import Topics
from tests.training.kafka_helpers import (
    command,
    produce,
    produce_command,
    produce_samples,
    read_topic,
    running_worker,
    trainer_settings,
)
from training.export import score_onnx
from training.network import predict
from training.reproduce import Reproduction, reproduce
from training.samples import KafkaSampleReader
from training.service import build_pipeline, build_worker
from training.settings import TrainerSettings
from training.synthetic import synthetic_samples

pytestmark = pytest.mark.integration


def _deployed(messages: list[Message]) -> list[ModelDeployed]:
    return [ModelDeployed.model_validate_json(m.value() or b"") for m in messages]


def _reproduced(settings: TrainerSettings, event: ModelDeployed, bootstrap: str) -> Reproduction:
    """`reproduce` of a deployment from its recorded lineage, read back from the broker."""
    assert event.lineage is not None
    return reproduce(
        build_pipeline(settings, faults=False),
        event.model_type,
        event.lineage,
        event.metrics.model_dump(),
        KafkaSampleReader(bootstrap, event.lineage.topic),
    )


def test_command_deploys_a_proven_model_once_and_its_lineage_reproduces(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    samples = synthetic_samples(400, "calling_score", seed=5)
    others = synthetic_samples(10, "outcome_prediction", seed=6)
    produce_samples(kafka_bootstrap, topics.training_samples, samples + others + samples[:20])
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    retrain = command("calling_score")
    produce_command(kafka_bootstrap, topics.retrain_commands, retrain)

    with running_worker(settings):
        first = _deployed(read_topic(kafka_bootstrap, topics.model_deployed, 1))
        assert len(first) == 1
        # a redelivered command (same command_id) republishes the same deployment, no new training
        produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
        both = _deployed(read_topic(kafka_bootstrap, topics.model_deployed, 2, settle=2.0))
    assert len(both) == 2 and {d.deployment_id for d in both} == {first[0].deployment_id}
    assert both[0] == both[1]
    assert "already settled" in caplog.text
    assert caplog.text.count("retrain command command_id") == 1  # trained once

    event = first[0]
    assert event.command_id == retrain.command_id and event.model_type == "calling_score"
    path = Path(unquote(urlparse(event.artifact_uri).path))
    assert path == settings.resolved_artifact_dir() / "calling_score" / f"{event.sha256}.onnx"
    onnx_bytes = path.read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == event.sha256 and event.size_bytes == len(
        onnx_bytes
    )
    assert (event.onnx_opset, event.input_name, event.input_shape) == (17, "features", [None, 23])
    assert (event.output_name, event.output_shape) == ("score", [None, 1])
    metrics = event.metrics.model_dump()
    assert metrics["train_samples"] + metrics["val_samples"] + metrics["test_samples"] == 400
    assert metrics["duplicates_dropped"] == 20 and metrics["parameters"] == 13441
    assert metrics["gate"] == "registry_unreachable" and event.baseline_metrics is None
    assert event.lineage is not None and event.lineage.topic == topics.training_samples
    assert sum(end - start for start, end in event.lineage.offsets.values()) == 430
    assert event.lineage.seed == 11 and event.lineage.package_version == "0.1.0"

    # the lineage reproduces the metrics exactly, and the artifact matches the reproduced torch model
    result = _reproduced(settings, event, kafka_bootstrap)
    assert result.exact, result.differences
    rows = np.asarray([s["features"] for s in samples[:100]], dtype=np.float32)
    np.testing.assert_allclose(
        score_onnx(onnx_bytes, rows), predict(result.network, rows), atol=1e-5, rtol=1e-4
    )

    # committed only after publishing: the group's offset is past both commands
    consumer = make_consumer(kafka_bootstrap, group_id)
    try:
        committed = consumer.committed(
            [TopicPartition(topics.retrain_commands, p) for p in range(4)], timeout=10
        )
    finally:
        consumer.close()
    assert sum(max(tp.offset, 0) for tp in committed) == 2


def test_a_busy_type_trains_on_its_newest_records_only_and_the_lineage_says_which(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    samples = synthetic_samples(500, "calling_score", seed=9)
    produce_samples(kafka_bootstrap, topics.training_samples, samples)
    settings = trainer_settings(
        kafka_bootstrap, topic_prefix, tmp_path, group_id, training_max_records=300
    )
    produce_command(kafka_bootstrap, topics.retrain_commands, command("calling_score"))
    with running_worker(settings):
        (event,) = _deployed(read_topic(kafka_bootstrap, topics.model_deployed, 1))
    metrics = event.metrics.model_dump()
    assert metrics["train_samples"] + metrics["val_samples"] + metrics["test_samples"] == 300
    assert event.lineage is not None
    ((start, end),) = [r for r in event.lineage.offsets.values() if r[1] > r[0]]
    assert (start, end) == (200, 500)  # the newest 300 of the 500 in the type's partition
    result = _reproduced(settings, event, kafka_bootstrap)
    assert result.exact, result.differences


def test_bad_commands_are_rejected_on_the_bus_and_the_worker_keeps_going(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    produce_samples(
        kafka_bootstrap,
        topics.training_samples,
        synthetic_samples(40, "calling_score", seed=1)
        + synthetic_samples(150, "outcome_prediction", seed=2),
    )
    too_few, unknown, valid = (
        command("calling_score"),
        command("nope"),
        command("outcome_prediction"),
    )
    produce(kafka_bootstrap, topics.retrain_commands, [(b"calling_score", b"{not json")])
    produce(kafka_bootstrap, topics.retrain_commands, [(b"calling_score", b'{"model_type": 3}')])
    for retrain in (unknown, too_few, valid):
        produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)

    with running_worker(settings):
        rejections = [
            RegistryEventOccurred.model_validate_json(m.value() or b"")
            for m in read_topic(kafka_bootstrap, topics.registry_events, 4)
        ]
        deployed = _deployed(read_topic(kafka_bootstrap, topics.model_deployed, 1))

    assert [d.command_id for d in deployed] == [valid.command_id]
    assert all(r.type == "deployment_rejected" and r.version is None for r in rejections)
    by_reason: dict[str, list[RegistryEventOccurred]] = {}
    for rejection in rejections:
        assert rejection.details is not None and rejection.reason == rejection.details["reason"]
        by_reason.setdefault(rejection.reason, []).append(rejection)
    assert sorted(by_reason) == ["invalid_command", "too_few_samples", "unknown_model_type"]
    assert len(by_reason["invalid_command"]) == 2
    assert all(r.details and r.details["command_id"] is None for r in by_reason["invalid_command"])
    assert by_reason["unknown_model_type"][0].details["command_id"] == unknown.command_id  # type: ignore[index]
    (short,) = by_reason["too_few_samples"]
    assert short.details == {
        "command_id": too_few.command_id,
        "reason": "too_few_samples",
        "detail": "40 usable samples, at least 100 needed (0 duplicates, 0 malformed dropped)",
    }
    assert caplog.text.count("deployment rejected") >= 4


def test_training_longer_than_max_poll_interval_does_not_rebalance(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    produce_samples(
        kafka_bootstrap, topics.training_samples, synthetic_samples(150, "calling_score")
    )
    settings = trainer_settings(
        kafka_bootstrap, topic_prefix, tmp_path, group_id, trainer_session_timeout_ms=6000
    )
    worker = build_worker(settings)
    export = worker.pipeline.exporter

    def slow_export(*args):  # type: ignore[no-untyped-def]
        time.sleep(9.0)  # longer than max.poll.interval.ms below
        return export(*args)

    worker.pipeline.exporter = slow_export
    produce_command(kafka_bootstrap, topics.retrain_commands, command("calling_score"))
    with running_worker(settings, worker, max_poll_interval_ms=6000):
        deployed = read_topic(kafka_bootstrap, topics.model_deployed, 1, settle=3.0)
    assert len(deployed) == 1
    assert "consumer error" not in caplog.text and "commit of" not in caplog.text


def test_an_outcome_recorded_but_not_published_is_published_by_the_next_worker(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    produce_samples(
        kafka_bootstrap, topics.training_samples, synthetic_samples(150, "calling_score")
    )
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    retrain = command("calling_score")
    # trained and recorded, then "killed" before publishing (and so before committing)
    crashed = build_worker(settings).handle_retrain_command(
        b"calling_score", to_json(retrain), "crashed/0/0"
    )
    assert read_topic(kafka_bootstrap, topics.model_deployed, 1, timeout=1.0) == []
    produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
    with running_worker(settings):  # a new worker over the same state dir
        (event,) = _deployed(read_topic(kafka_bootstrap, topics.model_deployed, 1, settle=1.0))
    assert event.deployment_id == crashed.recorded.event_id
    assert "already settled" in caplog.text


def test_a_backlog_of_one_type_trains_once_and_answers_the_rest_superseded(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    """Four queued commands (a restart, a trainer that fell behind): three for calling_score
    and one for outcome_prediction. Each type trains once, on its newest command; the older
    calling_score commands get `superseded` on registry-events, nothing trained for them."""
    produce_samples(
        kafka_bootstrap,
        topics.training_samples,
        synthetic_samples(300, "calling_score", seed=3)
        + synthetic_samples(300, "outcome_prediction", seed=4),
    )
    queued = [command("calling_score") for _ in range(3)] + [command("outcome_prediction")]
    for retrain in queued:
        produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    with running_worker(settings):
        deployed = _deployed(read_topic(kafka_bootstrap, topics.model_deployed, 2, settle=3.0))
        answers = [
            RegistryEventOccurred.model_validate_json(m.value() or b"")
            for m in read_topic(kafka_bootstrap, topics.registry_events, 2, settle=1.0)
        ]
    assert sorted(d.command_id or "" for d in deployed) == sorted(
        [queued[2].command_id, queued[3].command_id]
    )
    superseded = {(e.details or {})["command_id"]: e for e in answers}
    assert set(superseded) == {queued[0].command_id, queued[1].command_id}
    for answer in superseded.values():
        assert answer.type.value == "deployment_rejected" and answer.reason == "superseded"
        assert answer.version is None and answer.weights == {}
    assert {(e.details or {})["superseded_by"] for e in answers} == {queued[2].command_id}
