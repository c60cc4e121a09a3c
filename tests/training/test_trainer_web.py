"""The trainer's web port: /livez, /readyz (broker down: 503 with reasons; up: 200) and /metrics
counting real commands on a real broker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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
from training.service import build_worker, trainer_web
from training.settings import TrainerSettings
from training.synthetic import synthetic_samples
from training.worker import RetrainWorker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(settings: TrainerSettings, worker: RetrainWorker) -> Iterator[str]:
    web = trainer_web(settings, worker)
    web.start()
    try:
        yield f"http://127.0.0.1:{web.port}"
    finally:
        web.stop()


def samples_of(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_readyz_says_why_not_when_the_broker_and_the_registry_are_down(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    settings = trainer_settings(
        f"127.0.0.1:{closed}",
        "",
        tmp_path,
        "g",
        registry_url=f"http://127.0.0.1:{closed}",
        gate_unavailable_policy="reject",
        trainer_web_port=free_port(),
    )
    worker = build_worker(settings)
    with served(settings, worker) as url:
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
        answer = httpx.get(f"{url}/readyz", timeout=10)
        assert answer.status_code == 503
        body = answer.json()
        assert body["ready"] is False
        assert set(body["checks"]) == {"kafka", "consumer", "registry"}
        assert body["checks"]["kafka"].startswith("unreachable")
        assert body["checks"]["consumer"] == "the retrain-commands consumer is not running"
        assert body["checks"]["registry"].startswith("unreachable")
        # the process collector is there for the restart alerts
        assert ("process_start_time_seconds", ()) in samples_of(url)


def test_a_taken_port_stops_the_trainer_before_it_consumes(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = trainer_settings(
            "127.0.0.1:1", "", tmp_path, "g", trainer_web_port=taken.getsockname()[1]
        )
        with pytest.raises(OSError):
            trainer_web(settings, build_worker(settings)).start()


@pytest.mark.integration
def test_ready_on_the_broker_and_metrics_count_each_command(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, group_id: str, tmp_path: Path
) -> None:
    produce_samples(
        kafka_bootstrap,
        topics.training_samples,
        synthetic_samples(300, "calling_score", seed=3)
        + synthetic_samples(40, "outcome_prediction", seed=4),
    )
    settings = trainer_settings(
        kafka_bootstrap, topic_prefix, tmp_path, group_id, trainer_web_port=free_port()
    )
    worker = build_worker(settings)
    with served(settings, worker) as url, running_worker(settings, worker):
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{url}/readyz", timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        # the deploy policy (trainer_settings) needs no registry: not checked
        assert ready.json() == {"ready": True, "checks": {"kafka": "ok", "consumer": "ok"}}
        before = samples_of(url)
        published = {"model_type": "calling_score", "status": "published"}
        assert value(before, "relearn_trainer_commands_total", **published) == 0
        assert value(before, "relearn_trainer_in_progress") == 0

        trained = command("calling_score")
        produce_command(kafka_bootstrap, topics.retrain_commands, trained)
        produce_command(kafka_bootstrap, topics.retrain_commands, command("outcome_prediction"))
        produce(kafka_bootstrap, topics.retrain_commands, [(b"no-such-type", b"{not json")])
        read_topic(kafka_bootstrap, topics.model_deployed, 1)
        read_topic(kafka_bootstrap, topics.registry_events, 2)
        # the again-delivered command is answered from the ledger
        produce_command(kafka_bootstrap, topics.retrain_commands, trained)
        read_topic(kafka_bootstrap, topics.model_deployed, 2)
        deadline = time.monotonic() + 10
        while True:  # the answer is on the topic a moment before the metrics count it
            after = samples_of(url)
            count = "relearn_trainer_commands_total"
            if value(after, count, model_type="calling_score", status="duplicate") == 1:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)

    cs, op = {"model_type": "calling_score"}, {"model_type": "outcome_prediction"}
    assert value(after, count, status="published", **cs) == 1
    assert value(after, count, status="rejected", **cs) == 0
    assert value(after, count, status="rejected", **op) == 1
    # a key outside the catalogue is never a label value
    assert value(after, count, status="rejected", model_type="unknown") == 1
    assert not any(("model_type", "no-such-type") in labels for _name, labels in after)
    rejections = "relearn_trainer_rejections_total"
    assert value(after, rejections, reason="too_few_samples", **op) == 1
    assert value(after, rejections, reason="invalid_command", model_type="unknown") == 1
    assert value(after, "relearn_trainer_consecutive_rejections", **op) == 1
    assert value(after, "relearn_trainer_consecutive_rejections", **cs) == 0
    assert value(after, "relearn_trainer_samples_read_total", **cs) == 300
    assert value(after, "relearn_trainer_samples_read_total", **op) == 40
    assert time.time() - 120 < value(after, "relearn_trainer_last_success_timestamp_seconds", **cs)
    phases = "relearn_trainer_phase_duration_seconds_count"
    for phase in ("read", "train", "proof", "gate", "publish"):
        assert value(after, phases, phase=phase, **cs) == 1, phase
    assert value(after, phases, phase="read", **op) == 1  # rejected after its read
    assert (phases, (("model_type", "outcome_prediction"), ("phase", "train"))) not in after
    assert value(after, "relearn_trainer_phase_duration_seconds_sum", phase="train", **cs) > 0
