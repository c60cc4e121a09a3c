"""Divergence and a failed parity proof end in a deployment_rejected event, once per command."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pytest

from bus.logs import ContextIds
from contracts.events import RegistryEventOccurred, to_json
from contracts.model_types import ModelTypeSpec
from contracts.topics import Topics
from tests.training.conftest import dataset_of
from tests.training.kafka_helpers import command, read_topic, trainer_settings
from training.dataset import Dataset
from training.export import export_onnx
from training.network import ScoringNetwork, build_network
from training.samples import SampleRead
from training.service import build_pipeline, build_worker

pytestmark = pytest.mark.integration


class InMemorySamples:
    """A SampleSource over a fixed dataset (the Kafka reader is tested on the broker elsewhere)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def read_window(self, spec: ModelTypeSpec, since: datetime) -> SampleRead:
        return SampleRead(
            self.dataset, "in-memory", {0: (0, len(self.dataset))}, len(self.dataset), 0
        )

    def read_offsets(
        self, spec: ModelTypeSpec, offsets: Mapping[int, tuple[int, int]]
    ) -> SampleRead:
        return self.read_window(spec, datetime.min)


def _export_a_different_network(network: ScoringNetwork, spec: ModelTypeSpec, opset: int) -> bytes:
    stranger = build_network(spec, network.feature_mean.reshape(1, -1).numpy(), seed=999)
    return export_onnx(stranger, spec, opset)


@pytest.mark.parametrize("failure, reason", [("diverge", "diverged"), ("parity", "parity_failed")])
def test_training_failures_are_rejected_once(
    failure: str,
    reason: str,
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    pipeline = build_pipeline(settings)
    if failure == "diverge":
        hyper = dataclasses.replace(pipeline.config.hyper, learning_rate=1e6)
        pipeline.config = dataclasses.replace(pipeline.config, hyper=hyper)
    else:
        pipeline.exporter = _export_a_different_network
    worker = build_worker(
        settings, pipeline=pipeline, samples=InMemorySamples(dataset_of("outcome_prediction", 300))
    )
    retrain = command("outcome_prediction")
    outcome = worker.handle_retrain_command(b"outcome_prediction", to_json(retrain), "test/0/0")
    assert outcome.recorded.kind == "rejected" and not outcome.republished
    assert f"reason={reason}" in caplog.text
    worker.publish(outcome.recorded)
    again = worker.handle_retrain_command(b"outcome_prediction", to_json(retrain), "test/0/1")
    assert again.republished and again.recorded == outcome.recorded

    (message,) = read_topic(kafka_bootstrap, topics.registry_events, 1)
    event = RegistryEventOccurred.model_validate_json(message.value() or b"")
    assert message.key() == b"outcome_prediction"
    assert event.type == "deployment_rejected" and event.version is None and event.reason == reason
    assert event.details is not None and event.details["command_id"] == retrain.command_id
    assert event.details["reason"] == reason and event.details["detail"]
    assert not list((settings.resolved_artifact_dir()).glob("**/*.onnx"))  # nothing stored


def test_a_command_too_large_to_answer_in_kind_is_rejected_in_a_publishable_size(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    """A 400 KB model type (key and value) made a rejection event over the producer's 1 MB
    limit: the worker crashed on it after every restart."""
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    worker = build_worker(settings, samples=InMemorySamples(dataset_of("outcome_prediction", 10)))
    huge = "m" * 400_000
    value = to_json(command("outcome_prediction")).replace(
        b'"outcome_prediction"', f'"{huge}"'.encode()
    )
    outcome = worker.handle_retrain_command(huge.encode(), value, "test/0/7")
    assert outcome.recorded.kind == "rejected"
    worker.publish(outcome.recorded)
    (message,) = read_topic(kafka_bootstrap, topics.registry_events, 1)
    assert len(message.key() or b"") <= 64 and len(message.value() or b"") < 10_000
    event = RegistryEventOccurred.model_validate_json(message.value() or b"")
    assert event.type == "deployment_rejected"


def test_a_command_without_its_id_is_rejected_once_not_trained_per_read(
    kafka_bootstrap: str, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    """Parsing gave a command without command_id a new id on every read, so a replay after a
    crash trained and published a second version for it."""
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    worker = build_worker(settings, samples=InMemorySamples(dataset_of("outcome_prediction", 300)))
    value = b'{"model_type": "outcome_prediction", "reason": "manual"}'
    first = worker.handle_retrain_command(b"outcome_prediction", value, "test/0/9")
    again = worker.handle_retrain_command(b"outcome_prediction", value, "test/0/9")
    assert first.recorded.kind == "rejected" and "command_id" in first.recorded.value.decode()
    assert again.republished and again.recorded == first.recorded
    assert not list(settings.resolved_artifact_dir().glob("**/*.onnx"))  # nothing trained


def test_an_id_longer_than_the_registry_stores_is_refused_where_it_comes_in() -> None:
    from contracts.events import ModelDeployed, RetrainRequested

    with pytest.raises(ValueError):
        RetrainRequested(command_id="c" * 65, model_type="outcome_prediction", reason="manual")
    with pytest.raises(ValueError):
        ModelDeployed.model_validate({"deployment_id": "d" * 65})


def test_a_commands_log_ids_end_with_the_command(
    kafka_bootstrap: str,
    topic_prefix: str,
    group_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The command's ids are on its log lines, and not on the calling thread's later ones (a
    test calling the handler directly once leaked them into every later line)."""
    settings = trainer_settings(kafka_bootstrap, topic_prefix, tmp_path, group_id)
    worker = build_worker(settings, samples=InMemorySamples(dataset_of("outcome_prediction", 300)))
    caplog.handler.addFilter(ContextIds())
    caplog.set_level(logging.INFO)
    retrain = command("outcome_prediction")
    worker.handle_retrain_command(b"outcome_prediction", to_json(retrain), "test/0/3")
    assert [r for r in caplog.records if getattr(r, "command_id", None) == retrain.command_id]
    logging.getLogger(__name__).info("after the command")
    assert not hasattr(caplog.records[-1], "command_id")
