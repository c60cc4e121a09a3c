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
     send to the new version is polled on GET /models/<type>/route every 5 ms; latency = wall
     time of the first answer naming the new version - CreateTime of the model-deployed record;
   - decisive outcome -> version_rolled_back: the decisive sample is the k-th training sample
     served by the candidate, k = evidence.candidate_samples of streams' rollback command;
     latency = CreateTime of version_rolled_back - CreateTime of that outcome event. Also shown:
     from the last outcome produced before the rollback command's CreateTime (a lower bound).
     The decisive sample needs the old rule's evidence.candidate_samples; the matured-cohort
     rule (streams/experiment.py) reports matured counts instead, so only the lower bound and
     the command -> event figure are measured under it.
D. `--deploy-only --rounds N`: model-deployed -> /route alone, without training or traffic.
   `relearn registry` runs as a real process; one ONNX model is trained once by the trainer's
   pipeline (synthetic samples), and each round stores a copy of it made distinct (its ONNX
   doc_string names the round, so its sha256 differs) through the trainer's artifact store and
   publishes its model-deployed record as the trainer does (produce, flush). A first deployment
   becomes production; each round's is a new candidate (it replaces the last one). The new
   version and weights follow from the registry's state read before the round, so a subject the
   new weights send to the new version is polled on GET /route every 5 ms from before the
   record is produced; latency = wall time of the first answer naming the new version and its
   sha256 - CreateTime of the record (from its delivery report). Also shown: CreateTime of its
   version_registered (registry-events, published by the registry's outbox) - that CreateTime.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import httpx
import orjson

from bus.clients import make_producer
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
    to_json,
)
from contracts.model_types import ModelTypeCatalog
from contracts.serving import INITIAL_CANDIDATE_WEIGHT
from contracts.topics import TopicName
from registry.client import RegistryClient, RegistryClientError
from registry.routing import route
from registry.versioning import assign_version
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
    # One client for every round, made now: making one costs 20-60 ms (its TLS context), which
    # a round's measurement would include.
    client = httpx.Client(timeout=2.0, headers=headers)

    def poll_route(version: str, weights: dict[str, float]) -> None:
        subject = next(
            s for i in range(100_000) if route(weights, MODEL_TYPE, s := f"bench-{i}") == version
        )
        deadline = time.monotonic() + 60
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
            time.sleep(0.005)

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
        client.close()
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


@dataclass
class DeployRound:
    version: str
    sha256: str
    created: float  # CreateTime of the model-deployed record
    served: float | None = None  # wall time of the first /route answer naming it
    registered: float | None = None  # CreateTime of its version_registered
    load: float = 0.0  # 1-minute load average when the round ended
    subject: str = ""


def trained_model(catalog: ModelTypeCatalog) -> Any:
    """One candidate built by the trainer's own pipeline on synthetic samples (a few seconds)."""
    # Imported here: torch costs the other phases, which never train in this process, seconds.
    from training.dataset import DatasetBuilder
    from training.hyperparameters import Hyperparameters
    from training.pipeline import PipelineConfig, TrainingPipeline
    from training.production import FixedProductionSource
    from training.synthetic import synthetic_samples

    spec = catalog.get(MODEL_TYPE)
    assert spec is not None
    builder = DatasetBuilder(spec)
    for sample in synthetic_samples(2_000, MODEL_TYPE, spec.feature_count, seed=1):
        builder.add(
            sample["event_id"],
            sample["features"],
            sample["outcome_score"],
            sample["positive_outcome"],
        )
    config = PipelineConfig(hyper=Hyperparameters(seed=7, max_epochs=10), min_samples=100)
    return TrainingPipeline(catalog, config, FixedProductionSource()).build(spec, builder.build())


def _round_copy(onnx_bytes: bytes, round_number: int) -> bytes:
    """The same model, its sha256 made distinct by a doc_string naming the round."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    model.doc_string = f"relearn bench/loop_latency.py --deploy-only round {round_number}"
    return bytes(model.SerializeToString())


def _next_weights(summary: dict[str, float], production: str | None, new: str) -> dict[str, float]:
    """The weights after registering `new` (registry.lifecycle.plan_registration at the default
    candidate weight): all of them when there is no production, else the candidate's first
    step, production the rest (a candidate under test is replaced). Checked after the run
    against the weights version_registered carried."""
    if production is None:
        return {new: 1.0}
    weight = round(min(INITIAL_CANDIDATE_WEIGHT, sum(summary.values())), 6)
    return {production: round(sum(summary.values()) - weight, 6), new: weight}


def phase_deploy(base: Path, rounds: int) -> list[DeployRound]:
    """model-deployed -> /route naming the new version, `rounds` times, against a real registry."""
    from training.artifacts import LocalArtifactStore
    from training.pipeline import deployment_event

    env = _env(base, 10_000)
    settings = KafkaSettings(topic_prefix=env["RELEARN_TOPIC_PREFIX"])
    ensure_topics(settings)
    logs = Path(env["RELEARN_STATE_DIR"]).parent / "logs"
    registry_url = env["RELEARN_REGISTRY_URL"]
    catalog = ModelTypeCatalog()
    candidate = trained_model(catalog)
    artifacts = LocalArtifactStore(Path(env["RELEARN_ARTIFACT_DIR"]))
    producer = make_producer(settings.bootstrap_servers)
    topic = settings.topics.name(TopicName.MODEL_DEPLOYED)
    recorder = Recorder(settings.bootstrap_servers, settings)
    registry = Supervisor([ServiceSpec("registry", relearn_argv("registry"))], env, logs)
    done: list[DeployRound] = []
    try:
        registry.start()
        wait_http(registry_url + "/healthz", 120, "the registry")
        recorder.start()
        with (
            RegistryClient(registry_url, token=env["RELEARN_API_TOKEN"], timeout=2.0) as client,
            RegistryClient(registry_url, token=env["RELEARN_API_TOKEN"], timeout=2.0) as poller,
        ):
            for number in range(rounds + 1):  # round 0: the first version, production
                measured = _deploy_round(
                    number, candidate, artifacts, producer, topic, client, poller, deployment_event
                )
                if number > 0:
                    done.append(measured)
                time.sleep(random.uniform(0.3, 1.0))  # rounds never phase-lock with a timer
        time.sleep(2)  # the last version_registered
    finally:
        recorder.stop()
        registry.stop()
    registered = {
        e.version: (created, dict(e.weights))
        for created, e in recorder.registry_events
        if e.type is RegistryEventType.VERSION_REGISTERED and e.model_type == MODEL_TYPE
    }
    for measured in done:
        created, weights = registered.get(measured.version, (None, {}))
        measured.registered = created
        if route(weights, MODEL_TYPE, measured.subject) != measured.version:
            log.warning("round %s: the weights were not the predicted ones", measured.version)
            measured.served = None
    return done


def _deploy_round(
    number: int,
    candidate: Any,
    artifacts: Any,
    producer: Any,
    topic: str,
    client: RegistryClient,
    poller: RegistryClient,
    deployment_event: Any,
) -> DeployRound:
    summary = client.model(MODEL_TYPE)
    version = assign_version((v.version for v in client.versions(MODEL_TYPE)), None)
    production = summary.production.version if summary.production else None
    weights = _next_weights(summary.weights, production, version)
    subject = next(
        s for i in range(100_000) if route(weights, MODEL_TYPE, s := f"deploy-{i}") == version
    )
    stored = artifacts.put(MODEL_TYPE, _round_copy(candidate.proven.onnx, number))
    event = deployment_event(candidate, stored, f"bench-deploy-{uuid.uuid4()}", None)
    served: list[float] = []
    started = threading.Event()

    def poll() -> None:
        deadline = time.monotonic() + 30
        started.set()
        while time.monotonic() < deadline:
            try:
                answer = poller.route(MODEL_TYPE, subject)
            except RegistryClientError:
                answer = None
            if answer is not None and answer.version == version:
                served.append(time.time())
                if answer.sha256 != stored.sha256:
                    log.warning("%s served with sha256 %s", version, answer.sha256)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    started.wait()
    created: list[float] = []

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            created.append(message.timestamp()[1] / 1000)

    producer.produce(topic, key=MODEL_TYPE.encode(), value=to_json(event), on_delivery=delivered)
    producer.flush(30)
    watcher.join(35)
    if not created:
        raise RuntimeError(f"round {number}: model-deployed was not delivered")
    return DeployRound(
        version=version,
        sha256=stored.sha256,
        created=created[0],
        served=served[0] if served else None,
        load=os.getloadavg()[0],
        subject=subject,
    )


def report_deploy(rounds: list[DeployRound]) -> None:
    to_route = [r.served - r.created for r in rounds if r.served is not None]
    to_registered = [r.registered - r.created for r in rounds if r.registered is not None]
    print(f"(3) model-deployed -> /route serves it: {_summary(to_route)}")
    print(f"(3a) model-deployed -> version_registered: {_summary(to_registered)}")
    missing = [r.version for r in rounds if r.served is None]
    if missing:
        print(f"    not seen on /route (or weights not as predicted): {missing}")
    slowest = sorted(
        (r for r in rounds if r.served is not None), key=lambda r: r.created - r.served
    )[:5]
    for r in slowest:
        registered = (
            f"{(r.registered - r.created) * 1000:.0f} ms" if r.registered is not None else "?"
        )
        print(
            f"    slowest: {r.version} /route {((r.served or 0.0) - r.created) * 1000:.0f} ms, "
            f"registered {registered}, load {r.load:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trigger-threshold", type=int, default=100)
    parser.add_argument("--trigger-rate", type=float, default=200.0)
    parser.add_argument("--trigger-seconds", type=float, default=45.0)
    parser.add_argument("--loop-threshold", type=int, default=10_000)
    parser.add_argument("--loop-rate", type=float, default=500.0)
    parser.add_argument("--loop-seconds", type=float, default=300.0)
    parser.add_argument("--skip-trigger", action="store_true")
    parser.add_argument(
        "--deploy-only", action="store_true", help="only model-deployed -> /route (no training)"
    )
    parser.add_argument("--rounds", type=int, default=60, help="deployments with --deploy-only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = Path(mkdtemp(prefix="relearn-bench-loop-"))
    print(f"run directory {base}; load average {os.getloadavg()}")
    if args.deploy_only:
        rounds = phase_deploy(base, args.rounds)
        report_deploy(rounds)
        dump = base / "deploy_rounds.json"
        dump.write_bytes(orjson.dumps([dataclasses.asdict(r) for r in rounds]))
        print(f"every round (wall times, s): {dump}")
        print(f"load average at the end {os.getloadavg()}")
        return
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
