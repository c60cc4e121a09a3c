"""The loop under load, as three real service processes on the real broker: a small threshold
crossed many times over at thousands of events per second must not run away.

Every candidate is made bad (the trainer's fault file is rewritten after each model), so each is
rolled back by the live test and the next retrain follows. Asserted over the whole run: one
retrain in flight per type (from the topics, ordered by record time), at most one staging
version with traffic and production at 0.9 or more (from every registry event, and from the
registry sampled every 0.2 s), every candidate decided, and models bounded by decisions.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import TopicPartition
from pydantic import BaseModel

from bus.clients import make_consumer
from bus.settings import KafkaSettings
from contracts.events import (
    REJECTIONS,
    ModelDeployed,
    RegistryCommandIssued,
    RegistryEventOccurred,
    RegistryEventType,
    RetrainReason,
    RetrainRequested,
)
from contracts.topics import TopicName
from relearn.demo import service_environment, wait_http
from relearn.stack import ensure_topics
from relearn.supervisor import ServiceSpec, Supervisor, relearn_argv
from simulator.scenarios import fault_path, write_fault
from streams.registry_view import ModelTypeView, answered_command, apply_registry_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MT = "calling_score"
THRESHOLD = 150
RATE = 3000
TRAFFIC_SECONDS = 70
SETTLE_SECONDS = 60
MIN_PRODUCTION = 0.9 - 1e-9

_MODELS: dict[TopicName, type[BaseModel]] = {
    TopicName.RETRAIN_COMMANDS: RetrainRequested,
    TopicName.MODEL_DEPLOYED: ModelDeployed,
    TopicName.REGISTRY_COMMANDS: RegistryCommandIssued,
    TopicName.REGISTRY_EVENTS: RegistryEventOccurred,
}


@dataclass
class Recorder:
    """Every loop event with its record timestamp, and the registry sampled over HTTP."""

    bootstrap: str
    names: dict[str, TopicName]
    registry_url: str
    records: list[tuple[int, int, BaseModel]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def follow(self) -> None:
        consumer = make_consumer(
            self.bootstrap, f"load-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}
        )
        try:
            consumer.assign([TopicPartition(name, p, 0) for name in self.names for p in range(4)])
            sequence = 0
            while not self.stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                kind = self.names[message.topic() or ""]
                event = _MODELS[kind].model_validate_json(message.value() or b"")
                sequence += 1
                self.records.append((message.timestamp()[1], sequence, event))
        finally:
            consumer.close()

    def sample(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                try:
                    self.samples.append(client.get(f"{self.registry_url}/models/{MT}").json())
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)

    def of(self, cls: type) -> list[Any]:
        return [event for _, _, event in self.ordered() if isinstance(event, cls)]

    def ordered(self) -> list[tuple[int, int, BaseModel]]:
        return sorted(self.records, key=lambda r: (r[0], r[1]))


@pytest.fixture
def recorder(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Recorder, dict[str, str]]]:
    env = {
        **os.environ,
        **service_environment(tmp_path / "run", uuid.uuid4().hex[:10]),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RELEARN_RETRAIN_SAMPLE_THRESHOLD": str(THRESHOLD),
        "RELEARN_TRAINING_MAX_RECORDS": "3000",
        "RELEARN_TRAINING_MAX_EPOCHS": "30",
    }
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=env["RELEARN_TOPIC_PREFIX"]
    )
    ensure_topics(settings)
    names = {settings.topics.name(kind): kind for kind in _MODELS}
    recorder = Recorder(kafka_bootstrap, names, env["RELEARN_REGISTRY_URL"])
    threads = [threading.Thread(target=recorder.follow, daemon=True)]
    threads.append(threading.Thread(target=recorder.sample, daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield recorder, env
    finally:
        recorder.stop.set()
        for thread in threads:
            thread.join(timeout=10)


def _registry(env: dict[str, str]) -> dict[str, Any]:
    return httpx.get(f"{env['RELEARN_REGISTRY_URL']}/models/{MT}", timeout=5).json()


def test_a_busy_type_keeps_one_retrain_and_one_candidate_and_decisions_flow(
    recorder: tuple[Recorder, dict[str, str]],
) -> None:
    record, env = recorder
    faults = Path(env["RELEARN_FAULTS_DIR"])
    run_dir = Path(env["RELEARN_STATE_DIR"]).parent
    services = Supervisor(
        [ServiceSpec(name, relearn_argv(name)) for name in ("registry", "streams", "trainer")],
        base_env=env,
        log_dir=run_dir / "logs",
    )
    simulator = Supervisor(
        [
            ServiceSpec(
                "simulator",
                relearn_argv(
                    "simulate",
                    "--scenario",
                    "steady",
                    "--rate",
                    str(RATE),
                    "--events",
                    str(RATE * (TRAFFIC_SECONDS + SETTLE_SECONDS + 60)),
                    "--model-type",
                    MT,
                    "--no-progress",
                ),
            )
        ],
        base_env=env,
        log_dir=run_dir / "logs",
    )
    started = time.monotonic()
    try:
        services.start()
        wait_http(env["RELEARN_REGISTRY_URL"] + "/healthz", 120, "the registry")
        wait_http(env["RELEARN_STREAMS_URL"] + f"/samples/{MT}", 120, "streams")
        simulator.start()
        traffic_started = time.monotonic()
        # Every model after v1.0 serves near-random scores: each candidate is rolled back.
        while time.monotonic() - traffic_started < TRAFFIC_SECONDS:
            if record.of(RegistryEventOccurred) and not fault_path(faults, MT).exists():
                write_fault(faults, MT, 1.0)
            assert not services.exited(), services.exited()
            time.sleep(0.2)
        # Traffic goes on until the candidate under test (if any) is decided, then stops.
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline and len(_registry(env)["weights"]) > 1:
            time.sleep(0.2)
        simulator.stop()
        traffic_stopped = time.monotonic()
        time.sleep(5)  # what was in flight lands
    finally:
        simulator.stop()
        services.stop()
    elapsed = time.monotonic() - started

    # -- one retrain in flight per type, from the topics in record-time order -----------------
    in_flight: set[str] = set()
    commands = superseded = 0
    held = 0
    for _, _, event in record.ordered():
        if isinstance(event, RetrainRequested):
            assert event.reason is not RetrainReason.MANUAL
            assert not in_flight, f"{event.command_id} sent while {in_flight} in flight"
            in_flight.add(event.command_id)
            commands += 1
            held += event.held_crossings
        elif isinstance(event, RegistryEventOccurred):
            answered = answered_command(event)
            if answered is not None:
                in_flight.discard(answered)
            superseded += event.reason == "superseded"

    # -- one candidate, production never starved: every registry event, and every sample ------
    view: ModelTypeView | None = None
    min_production = 1.0
    for event in record.of(RegistryEventOccurred):
        view = apply_registry_event(view, event)
        live_staging = [
            v for v, s in view.statuses.items() if s == "staging" and view.weights.get(v, 0) > 0
        ]
        assert len(live_staging) <= 1, view
        if view.production is not None and event.type not in REJECTIONS:
            min_production = min(min_production, view.weights.get(view.production, 0.0))
    for sample in record.samples:
        assert len([s for s in sample["staging"] if s["weight"] > 0]) <= 1, sample
        if sample["production"] is not None:
            min_production = min(min_production, sample["production"]["weight"])
    assert min_production >= MIN_PRODUCTION

    # -- decisions keep flowing: every candidate decided, models bounded by decisions ----------
    assert view is not None
    registered = [
        e
        for e in record.of(RegistryEventOccurred)
        if e.type is RegistryEventType.VERSION_REGISTERED
    ]
    candidates = [e.version for e in registered if e.status == "staging"]
    decided = [
        v for v in candidates if view.statuses.get(v) in {"rolled_back", "archived", "production"}
    ]
    undecided = [v for v in candidates if v not in decided]
    decisions = [c for c in record.of(RegistryCommandIssued) if c.issued_by == "auto"]
    deployed = record.of(ModelDeployed)
    rejected = sorted(e.reason for e in record.of(RegistryEventOccurred) if e.type in REJECTIONS)
    print(
        f"\nunder load: {elapsed:.0f} s ({traffic_stopped - traffic_started:.0f} s of traffic at "
        f"{RATE}/s, threshold {THRESHOLD}): {commands} retrain commands ({held} crossings held), "
        f"{superseded} superseded, rejected {rejected}, {len(deployed)} models, "
        f"{len(registered)} versions, "
        f"{len(decisions)} decisions, {len(decided)} candidates decided, undecided {undecided}, "
        f"min production weight {min_production:.3f}, {len(record.samples)} registry samples"
    )
    assert len(candidates) >= 2, "too few candidates to say anything: the loop did not turn"
    assert held > 5 * commands, "the threshold was not crossed many times over"
    # at most the newest candidate, registered as traffic stopped, is still undecided
    assert undecided in ([], candidates[-1:]), undecided
    assert len(deployed) - 1 <= len(decided) + 1  # the first model needs no decision
