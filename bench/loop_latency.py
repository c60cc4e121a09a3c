"""Loop latencies with the services as real processes: trigger, training, serving, rollback.

Two phases against a broker (default the dev broker 127.0.0.1:9092), each with its own topic
prefix, state, ports and token from `relearn.demo.service_environment`:

A. trigger: `relearn streams` and `relearn registry` without a trainer (no model is ever
   deployed, so no candidate is under test and streams never holds its threshold command) with a low sample threshold, fed by `relearn simulate`.
   The crossing sample of command i is the (sum of new_samples of commands 1..i)-th record of the
   model type's training-samples partition (streams counts exactly that partition, in order);
   latency = CreateTime of the command - CreateTime of that sample's outcome event.
B. loop: streams + trainer + registry + simulator, threshold 10,000 samples. The first model is
   healthy and becomes production; every later one is broken by fault injection
   (`simulator.scenarios.write_fault`, strength 1.0), so each candidate is rolled back by the live
   sequential test and the next round starts. Measured per round:
   - retrain command -> model-deployed: CreateTime to CreateTime (matched by command_id);
   - model-deployed -> /route serving it: on version_registered, a subject the event's weights
     send to the new version is polled on GET /models/<type>/route every 10 ms; latency = wall
     time of the first answer naming the new version - CreateTime of the model-deployed record;
   - decisive outcome -> version_rolled_back: the decisive sample is the k-th training sample
     served by the candidate, k = evidence.candidate_samples of streams' rollback command;
     latency = CreateTime of version_rolled_back - CreateTime of that outcome event. Also shown:
     from the last outcome produced before the rollback command's CreateTime (a lower bound).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import mkdtemp

import httpx
import orjson

from bus.records import Record
from bus.settings import KafkaSettings
from bus.tail import TopicTail
from contracts.events import (
    ModelDeployed,
    RegistryCommandIssued,
    RegistryCommandType,
    RegistryEventOccurred,
    RegistryEventType,
    RetrainReason,
    RetrainRequested,
)
from contracts.topics import TopicName
from registry.routing import route
from relearn.demo import service_environment, wait_http
from relearn.stack import ensure_topics
from relearn.supervisor import ServiceSpec, Supervisor, relearn_argv
from simulator.scenarios import write_fault

log = logging.getLogger(__name__)
MODEL_TYPE = "calling_score"


@dataclass
class Recorder:
    """Consumes the loop's topics from the start and keeps records with their CreateTime (s)."""

    bootstrap: str
    settings: KafkaSettings
    outcome_ts: dict[str, float] = field(default_factory=dict)  # event_id -> CreateTime
    # (event_id, model_version, occurred_at epoch s), in the model type's partition order
    samples: list[tuple[str, str, float]] = field(default_factory=list)
    commands: list[tuple[float, RetrainRequested]] = field(default_factory=list)
    deployed: list[tuple[float, ModelDeployed]] = field(default_factory=list)
    registry_commands: list[tuple[float, RegistryCommandIssued]] = field(default_factory=list)
    registry_events: list[tuple[float, RegistryEventOccurred]] = field(default_factory=list)
    outcome_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        topics = self.settings.topics
        self._names = {
            topics.name(kind): kind
            for kind in (
                TopicName.OUTCOME_EVENTS,
                TopicName.TRAINING_SAMPLES,
                TopicName.RETRAIN_COMMANDS,
                TopicName.MODEL_DEPLOYED,
                TopicName.REGISTRY_COMMANDS,
                TopicName.REGISTRY_EVENTS,
            )
        }
        self._tail: TopicTail[bytes | None] = TopicTail(
            self.bootstrap, list(self._names), name="recorder", on_record=self._on_record
        )
        self.listeners: list = []

    def start(self) -> Recorder:
        self._tail.start()
        return self

    def stop(self) -> None:
        self._tail.stop()
        self._tail.join(timeout=10)

    def _on_record(self, record: Record[bytes | None]) -> None:
        if record.timestamp is not None and record.value is not None:
            self._record(self._names[record.topic], record.timestamp, record.value)

    def _record(self, kind: TopicName, created: float, value: bytes) -> None:
        with self._lock:
            if kind is TopicName.OUTCOME_EVENTS:
                raw = orjson.loads(value)
                self.outcome_ts[str(raw.get("event_id"))] = created
                self.outcome_times.append(created)
            elif kind is TopicName.TRAINING_SAMPLES:
                raw = orjson.loads(value)
                if raw.get("model_type") == MODEL_TYPE:
                    occurred = datetime.fromisoformat(raw["occurred_at"]).timestamp()
                    self.samples.append((str(raw["event_id"]), str(raw["model_version"]), occurred))
            elif kind is TopicName.RETRAIN_COMMANDS:
                self.commands.append((created, RetrainRequested.model_validate_json(value)))
            elif kind is TopicName.MODEL_DEPLOYED:
                self.deployed.append((created, ModelDeployed.model_validate_json(value)))
            elif kind is TopicName.REGISTRY_COMMANDS:
                self.registry_commands.append(
                    (created, RegistryCommandIssued.model_validate_json(value))
                )
            elif kind is TopicName.REGISTRY_EVENTS:
                event = RegistryEventOccurred.model_validate_json(value)
                self.registry_events.append((created, event))
                for listener in self.listeners:
                    listener(created, event)


def _summary(values: list[float]) -> str:
    if not values:
        return "n=0"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return (
        f"n={len(values)} p50={statistics.median(values) * 1000:.0f} ms "
        f"p99={p99 * 1000:.0f} ms max={ordered[-1] * 1000:.0f} ms min={ordered[0] * 1000:.0f} ms"
    )


def _env(base: Path, threshold: int) -> dict[str, str]:
    run_id = uuid.uuid4().hex[:10]
    env = {**os.environ, **service_environment(base / run_id, run_id)}
    env["RELEARN_RETRAIN_SAMPLE_THRESHOLD"] = str(threshold)
    return env


def _simulator(env: dict[str, str], rate: float, log_dir: Path) -> Supervisor:
    argv = relearn_argv(
        "simulate", "--scenario", "steady", "--rate", str(rate), "--events", "10000000",
        "--model-type", MODEL_TYPE, "--no-progress",
    )  # fmt: skip
    return Supervisor([ServiceSpec("simulator", argv)], base_env=env, log_dir=log_dir)


def phase_trigger(base: Path, threshold: int, rate: float, duration: float) -> list[float]:
    """Threshold-crossing outcome event produced -> retrain command CreateTime, per command."""
    env = _env(base, threshold)
    settings = KafkaSettings(topic_prefix=env["RELEARN_TOPIC_PREFIX"])
    ensure_topics(settings)
    logs = Path(env["RELEARN_STATE_DIR"]).parent / "logs"
    recorder = Recorder(settings.bootstrap_servers, settings).start()
    services = Supervisor(  # the simulator routes through the registry; no trainer, no model
        [
            ServiceSpec("streams", relearn_argv("streams")),
            ServiceSpec("registry", relearn_argv("registry")),
        ],
        env,
        logs,
    )
    simulator = _simulator(env, rate, logs)
    try:
        services.start()
        wait_http(env["RELEARN_REGISTRY_URL"] + "/healthz", 120, "the registry")
        wait_http(env["RELEARN_STREAMS_URL"] + f"/samples/{MODEL_TYPE}", 120, "streams")
        simulator.start()
        time.sleep(duration)
    finally:
        simulator.stop()
        time.sleep(3)  # let the last commands arrive
        services.stop()
        recorder.stop()
    latencies: list[float] = []
    position = 0
    for created, command in recorder.commands:
        if command.model_type != MODEL_TYPE:
            continue
        position += command.new_samples
        if command.reason is not RetrainReason.SAMPLE_THRESHOLD or position > len(recorder.samples):
            continue
        event_id, _, _ = recorder.samples[position - 1]
        produced = recorder.outcome_ts.get(event_id)
        if produced is not None:
            latencies.append(created - produced)
    return latencies


@dataclass
class LoopFigures:
    command_to_deployed: list[tuple[float, int]] = field(default_factory=list)  # (s, samples)
    deployed_to_route: list[float] = field(default_factory=list)
    deployed_to_registered: list[float] = field(default_factory=list)
    decisive_to_rolled_back: list[float] = field(default_factory=list)
    last_outcome_to_rolled_back: list[float] = field(default_factory=list)
    rollback_command_to_event: list[float] = field(default_factory=list)


def phase_loop(base: Path, threshold: int, rate: float, duration: float) -> LoopFigures:
    env = _env(base, threshold)
    settings = KafkaSettings(topic_prefix=env["RELEARN_TOPIC_PREFIX"])
    ensure_topics(settings)
    logs = Path(env["RELEARN_STATE_DIR"]).parent / "logs"
    faults = Path(env["RELEARN_FAULTS_DIR"])
    registry = env["RELEARN_REGISTRY_URL"]
    headers = {"Authorization": f"Bearer {env['RELEARN_API_TOKEN']}"}
    serving_at: dict[str, tuple[float, str]] = {}  # version -> (wall time, sha256)
    registered_at: dict[str, float] = {}
    recorder = Recorder(settings.bootstrap_servers, settings)

    def poll_route(version: str, weights: dict[str, float]) -> None:
        subject = next(
            s for i in range(100_000) if route(weights, MODEL_TYPE, s := f"bench-{i}") == version
        )
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2.0, headers=headers) as client:
            while time.monotonic() < deadline:
                try:
                    answer = client.get(
                        f"{registry}/models/{MODEL_TYPE}/route", params={"subject_id": subject}
                    ).json()
                except (httpx.HTTPError, ValueError):
                    answer = {}
                if answer.get("version") == version:
                    serving_at[version] = (time.time(), str(answer.get("sha256")))
                    return
                time.sleep(0.01)

    def on_event(created: float, event: RegistryEventOccurred) -> None:
        if event.model_type != MODEL_TYPE or event.version is None:
            return
        if event.type is RegistryEventType.VERSION_REGISTERED:
            registered_at[event.version] = created
            write_fault(faults, MODEL_TYPE, 1.0)  # every model after the first is broken
            threading.Thread(
                target=poll_route, args=(event.version, dict(event.weights)), daemon=True
            ).start()

    recorder.listeners.append(on_event)
    recorder.start()
    services = Supervisor(
        [
            ServiceSpec("streams", relearn_argv("streams")),
            ServiceSpec("trainer", relearn_argv("trainer")),
            ServiceSpec("registry", relearn_argv("registry")),
        ],
        env,
        logs,
    )
    simulator = _simulator(env, rate, logs)
    try:
        services.start()
        wait_http(registry + "/healthz", 120, "the registry")
        wait_http(env["RELEARN_STREAMS_URL"] + f"/samples/{MODEL_TYPE}", 120, "streams")
        simulator.start()
        time.sleep(duration)
    finally:
        simulator.stop()
        time.sleep(2)
        services.stop()
        recorder.stop()
    return _loop_figures(recorder, serving_at, registered_at)


def _loop_figures(
    rec: Recorder, serving_at: dict[str, tuple[float, str]], registered_at: dict[str, float]
) -> LoopFigures:
    figures = LoopFigures()
    commands = {c.command_id: created for created, c in rec.commands}
    by_sha: dict[str, float] = {}
    for created, deployed in rec.deployed:
        by_sha[deployed.sha256] = created
        if deployed.command_id in commands:
            figures.command_to_deployed.append(
                (created - commands[deployed.command_id], deployed.metrics.train_samples)
            )
    versions_sha = {}
    for version, (wall, sha) in serving_at.items():
        versions_sha[version] = sha
        if sha in by_sha:
            figures.deployed_to_route.append(wall - by_sha[sha])
            if version in registered_at:
                figures.deployed_to_registered.append(registered_at[version] - by_sha[sha])
    rolled_back = {
        e.version: created
        for created, e in rec.registry_events
        if e.type is RegistryEventType.VERSION_ROLLED_BACK
    }
    outcome_times = sorted(rec.outcome_times)
    for created, command in rec.registry_commands:
        if command.type is not RegistryCommandType.ROLLBACK or command.version not in rolled_back:
            continue
        done = rolled_back[command.version]
        figures.rollback_command_to_event.append(done - created)
        k = int((command.evidence or {}).get("candidate_samples", 0))
        # streams' A/B arms count only outcomes that occurred after the weights last changed
        started = _experiment_start(rec, command.version, created)
        served = [eid for eid, v, at in rec.samples if v == command.version and at >= started]
        if 0 < k <= len(served) and served[k - 1] in rec.outcome_ts:
            figures.decisive_to_rolled_back.append(done - rec.outcome_ts[served[k - 1]])
        before = [t for t in outcome_times if t <= created]
        if before:
            figures.last_outcome_to_rolled_back.append(done - before[-1])
    return figures


def _experiment_start(rec: Recorder, version: str | None, before: float) -> float:
    """occurred_at of the last weight change involving `version` before `before` (CreateTime)."""
    starts = [
        e.occurred_at.timestamp()
        for created, e in rec.registry_events
        if created <= before and e.version == version and e.model_type == MODEL_TYPE
    ]
    return max(starts, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trigger-threshold", type=int, default=100)
    parser.add_argument("--trigger-rate", type=float, default=200.0)
    parser.add_argument("--trigger-seconds", type=float, default=45.0)
    parser.add_argument("--loop-threshold", type=int, default=10_000)
    parser.add_argument("--loop-rate", type=float, default=500.0)
    parser.add_argument("--loop-seconds", type=float, default=300.0)
    parser.add_argument("--skip-trigger", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = Path(mkdtemp(prefix="relearn-bench-loop-"))
    print(f"run directory {base}; load average {os.getloadavg()}")
    if not args.skip_trigger:
        trigger = phase_trigger(
            base, args.trigger_threshold, args.trigger_rate, args.trigger_seconds
        )
        print(f"(1) crossing outcome -> retrain command: {_summary(trigger)}")
    loop = phase_loop(base, args.loop_threshold, args.loop_rate, args.loop_seconds)
    print(
        "(2) retrain command -> model-deployed: "
        f"{_summary([s for s, _ in loop.command_to_deployed])}; "
        f"train_samples {[n for _, n in loop.command_to_deployed]}"
    )
    print(f"(3) model-deployed -> /route serves it: {_summary(loop.deployed_to_route)}")
    print(f"    model-deployed -> version_registered: {_summary(loop.deployed_to_registered)}")
    print(f"(4) decisive outcome -> version_rolled_back: {_summary(loop.decisive_to_rolled_back)}")
    print(f"    last outcome before command -> rolled_back: "
          f"{_summary(loop.last_outcome_to_rolled_back)}")  # fmt: skip
    print(f"    rollback command -> rolled_back: {_summary(loop.rollback_command_to_event)}")
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
