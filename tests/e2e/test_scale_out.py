"""Scale-out on one machine: two streams workers, two registries on PostgreSQL, two trainers.

Real processes on the real broker, driven by bursts of thousands of outcome events per second
for three model types whose counters live on three different training-samples partitions (so
both streams workers count some). The generator routes each event by the registry's weights,
as an app would, and every candidate it is routed to does worse than production, so the A/B
test (counted by `served_at` once a short outcome window has passed in event time) rolls it
back and the next held crossing trains again. Asserted against the generator's
ground truth and the topics:
- one retrain command per crossing: no command id twice; each command's `new_samples` is its
  crossings (`1 + held_crossings` thresholds' worth); the commands' samples plus what each
  counter still holds are exactly the samples sent, so no crossing was sent twice or lost;
  one retrain in flight per type (in record-time order);
- one version per command, on both registry instances' answers, and every command answered;
- at most one decision per experiment (one verdict per candidate), every one a rollback, and at
  least one;
- the tables: /samples and /performance of both workers equal the ground truth, per model type
  and version.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bus.clients import make_producer
from bus.local_broker import free_port
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
from relearn.stack import ensure_topics
from streams.registry_view import answered_command
from tests.chaos.harness import Registry, Trainer
from tests.registry.conftest import fresh_postgres_database
from tests.registry.conftest import postgres_server as postgres_server  # noqa: F401 - fixture
from tests.streams.harness import (
    REPO,
    StreamsWorker,
    get_json,
    group_members_with_partitions,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Three types on three of training-samples' four partitions (Java's murmur2 of the key: 1, 2,
# 0; checked below from the topic): with two workers holding two partitions each, both count.
MODEL_TYPES = ("calling_score", "outcome_prediction", "lead_score")
THRESHOLD = 2_000
BURST = 3_000  # events sent as fast as the producer takes them, once a second
PERIOD = 1.0
TRAFFIC_SECONDS = 40
SETTLE_SECONDS = 60
# The A/B decision (docs/decision.md) on the test's time scale: every outcome is reported 1 s
# after serving, so a 3 s window holds all of them; cohorts mature 3 s + the allowance after
# their serving (event time, which the traffic advances), the first look at 100 matured
# candidate outcomes (about 1 s of a candidate's 10%). The allowance covers the two workers'
# lag behind each other on the type's partition; an outcome behind it is only left out.
OUTCOME_WINDOW_SECONDS = 3
ABTEST_FIRST_LOOK = 100
ABTEST_WATERMARK_ALLOWANCE_SECONDS = 1.0
FEATURES = 23
DUPLICATE_EVERY = 40  # a re-sent event (same id, same bytes): dropped by streams
INVALID_EVERY = 500  # a wrong feature count: dead-lettered
SUBJECTS = 5_000
NO_MODEL = "v0.0"

# Small networks and few epochs: the test is about the loop, not the model (a shared 2-core box).
MODEL_TYPES_YAML = "model_types:\n" + "".join(
    f"  - {{name: {name}, feature_count: 23, target: {target}, loss: {loss},"
    f" hidden_layers: [16, 8], outcome_window_seconds: {OUTCOME_WINDOW_SECONDS}}}\n"
    for name, target, loss in (
        ("calling_score", "outcome_score", "mse"),
        ("outcome_prediction", "positive_outcome", "bce"),
        ("lead_score", "positive_outcome", "bce"),
    )
)


@dataclass
class Traffic:
    """The apps: outcome events routed by the registry's weights, and their ground truth."""

    bootstrap: str
    topic: str
    registries: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(18))
    # (model type, version, UTC day) -> valid, unique samples sent, and how many were positive
    truth: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    positives: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    invalid: int = 0
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    production: dict[str, str | None] = field(default_factory=dict)
    _recent: list[tuple[bytes, bytes]] = field(default_factory=list)
    _coefficients: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._coefficients = [self.rng.uniform(-1.5, 1.5) for _ in range(FEATURES)]

    def refresh_routes(self, client: httpx.Client, turn: int) -> None:
        """The weights of every type, from the two registry instances in turn."""
        for model_type in MODEL_TYPES:
            url = f"{self.registries[turn % len(self.registries)]}/models/{model_type}"
            try:
                summary = client.get(url, timeout=2).json()
            except httpx.HTTPError:
                continue  # keep the last routes
            self.weights[model_type] = {v: float(w) for v, w in summary["weights"].items() if w}
            production = summary.get("production")
            self.production[model_type] = production["version"] if production else None

    def _version(self, model_type: str) -> str:
        weights = self.weights.get(model_type) or {}
        draw = self.rng.random()
        for version, weight in sorted(weights.items()):
            if draw < weight:
                return version
            draw -= weight
        return self.production.get(model_type) or NO_MODEL

    def event(self, index: int) -> tuple[bytes, bytes, tuple[str, str, str] | None, bool]:
        """One event (key, value), its truth key when valid, and whether it is positive."""
        model_type = MODEL_TYPES[index % len(MODEL_TYPES)]
        version = self._version(model_type)
        features = [self.rng.uniform(-1.0, 1.0) for _ in range(FEATURES)]
        if version in (NO_MODEL, self.production.get(model_type)):
            z = sum(c * x for c, x in zip(self._coefficients, features, strict=True))
            outcome = 1.0 / (1.0 + math.exp(-z))
            prediction = min(1.0, max(0.0, outcome + self.rng.gauss(0.0, 0.05)))
        else:  # a candidate: its users do worse, and it predicts them badly
            outcome, prediction = 0.0, 0.9
        occurred = datetime.now(UTC)
        invalid = index % INVALID_EVERY == INVALID_EVERY - 1
        subject = f"s{self.rng.randrange(SUBJECTS)}"
        value = orjson.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "model_type": model_type,
                "model_version": version,
                "subject_id": subject,
                "features": features[:-1] if invalid else features,
                "prediction": prediction,
                "outcome_score": outcome,
                "positive_outcome": outcome >= 0.5,
                "occurred_at": occurred.isoformat(),
                "served_at": (occurred - timedelta(seconds=1)).isoformat(),
            }
        )
        truth = None if invalid else (model_type, version, occurred.date().isoformat())
        return subject.encode(), value, truth, outcome >= 0.5

    def run(self, seconds: float, still_running: Any) -> int:
        """Bursts of BURST events every PERIOD for `seconds`; returns how many were sent."""
        producer = make_producer(self.bootstrap, **{"linger.ms": 20, "batch.num.messages": 10_000})
        sent = 0
        ends = time.monotonic() + seconds
        with httpx.Client() as client:
            turn = 0
            while time.monotonic() < ends:
                started = time.monotonic()
                self.refresh_routes(client, turn)
                turn += 1
                for _ in range(BURST):
                    key, value = self._next(sent)
                    self._produce(producer, key, value)
                    sent += 1
                producer.poll(0)
                still_running()
                time.sleep(max(0.0, PERIOD - (time.monotonic() - started)))
        assert producer.flush(60) == 0
        return sent

    def _next(self, index: int) -> tuple[bytes, bytes]:
        if index % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and self._recent:
            self.duplicates += 1
            return self.rng.choice(self._recent)
        key, value, truth, positive = self.event(index)
        if truth is None:
            self.invalid += 1
        else:
            self.truth[truth] += 1
            self.positives[truth] += positive
            self._recent = [*self._recent[-99:], (key, value)]
        return key, value

    def _produce(self, producer: Any, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(self.topic, value, key)
                return
            except BufferError:
                producer.poll(0.05)

    def samples_of(self, model_type: str) -> int:
        return sum(n for (t, _, _), n in self.truth.items() if t == model_type)


@dataclass
class Cluster:
    """Every process of the scale-out run."""

    registries: list[Registry]
    trainers: list[Trainer]
    workers: list[StreamsWorker]

    @property
    def processes(self) -> list[Any]:
        return [*self.registries, *self.trainers, *self.workers]

    def exited(self) -> list[str]:
        dead = [p for p in self.processes if p.process is None or p.process.poll() is not None]
        return [str(getattr(p, "log_path", p)) for p in dead]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def cluster(
    kafka_bootstrap: str,
    postgres_server: str,
    tmp_path: Path,  # noqa: F811 - the fixture
) -> Iterator[tuple[Cluster, KafkaSettings]]:
    prefix = f"scale{uuid.uuid4().hex[:8]}-"
    types_file = tmp_path / "model_types.yaml"
    types_file.write_text(MODEL_TYPES_YAML)
    database = fresh_postgres_database(postgres_server)
    shared = {
        "RELEARN_MODEL_TYPES_FILE": str(types_file),
        "RELEARN_ARTIFACT_DIR": str(tmp_path / "artifacts"),  # one volume, as in Kubernetes
        "RELEARN_DATABASE_URL": database,
    }
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    ensure_topics(settings)
    # The schema first, once (Kubernetes' init container), then two instances on it.
    subprocess.run(
        [sys.executable, "-m", "relearn.cli", "registry", "--migrate-only"],
        cwd=REPO,
        env={**Registry(kafka_bootstrap, prefix, 1, tmp_path / "migrate", **shared).env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    group = f"scale-{uuid.uuid4().hex[:8]}"
    registries = [
        Registry(
            kafka_bootstrap,
            prefix,
            free_port(),
            tmp_path / f"registry-{name}",
            RELEARN_REGISTRY_CONSUMER_GROUP=f"{group}-registry",
            **shared,
        )
        for name in "ab"
    ]
    trainers = [
        Trainer(
            kafka_bootstrap,
            prefix,
            tmp_path / f"trainer-{name}",
            f"{group}-trainer",
            registry.url,
            RELEARN_TRAINING_MAX_RECORDS="2000",
            **shared,
        )
        for name, registry in zip("ab", registries, strict=True)
    ]
    workers = [
        StreamsWorker(
            kafka_bootstrap,
            prefix,
            free_port(),
            tmp_path / f"streams-{name}",
            RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(THRESHOLD),
            RELEARN_RETRAIN_PENDING_TIMEOUT_SECONDS="1800",  # trainers answer here
            RELEARN_ABTEST_FIRST_LOOK=str(ABTEST_FIRST_LOOK),
            RELEARN_ABTEST_WATERMARK_ALLOWANCE_SECONDS=str(ABTEST_WATERMARK_ALLOWANCE_SECONDS),
            RELEARN_SCHEDULE_CHECK_SECONDS="1",  # held crossings go soon after their answer
            **shared,
        )
        for name in "ab"
    ]
    running = Cluster(registries, trainers, workers)
    try:
        for registry in registries:
            registry.start()
        for registry in registries:
            registry.wait_ready(90)
        for process in [*trainers, *workers]:
            process.start()
        for worker in workers:
            worker.wait_web(120)
        # Traffic starts once every group is stable with both members holding partitions.
        groups = [
            (f"{prefix}relearn-streams", "streams"),
            (f"{group}-trainer", "trainers"),
            (f"{group}-registry.model-deployed", "registries (model-deployed)"),
            (f"{group}-registry.registry-commands", "registries (registry-commands)"),
        ]
        for name, what in groups:
            wait_until(
                lambda name=name: group_members_with_partitions(kafka_bootstrap, name) == 2,
                120,
                f"two {what} holding partitions of group {name}",
            )
        yield running, settings
    finally:
        running.stop()


@dataclass
class Snapshot:
    """The loop's topics and both workers' views at one moment."""

    commands: list[tuple[int, RetrainRequested]]  # (record time in ms, command)
    answers: dict[str, list[tuple[int, RegistryEventOccurred]]]  # command id -> its answers
    events: list[RegistryEventOccurred]
    samples: dict[str, list[Any]]  # model type -> /samples of each worker

    @classmethod
    def read(cls, settings: KafkaSettings, workers: list[StreamsWorker]) -> Snapshot:
        bootstrap, topics = settings.bootstrap_servers, settings.topics
        commands = [
            (m.timestamp()[1], RetrainRequested.model_validate_json(m.value()))
            for m in read_topic(bootstrap, topics.retrain_commands)
        ]
        events: list[tuple[int, RegistryEventOccurred]] = [
            (m.timestamp()[1], RegistryEventOccurred.model_validate_json(m.value()))
            for m in read_topic(bootstrap, topics.registry_events)
        ]
        answers: dict[str, list[tuple[int, RegistryEventOccurred]]] = defaultdict(list)
        for at, event in events:
            answered = answered_command(event)
            if answered is not None:
                answers[answered].append((at, event))
        samples = {t: [get_json(f"{w.url}/samples/{t}") for w in workers] for t in MODEL_TYPES}
        return cls(commands, dict(answers), [e for _, e in events], samples)

    def of(self, model_type: str) -> list[tuple[int, RetrainRequested]]:
        return sorted(
            ((at, c) for at, c in self.commands if c.model_type == model_type),
            key=lambda item: item[0],
        )

    def settled(self, traffic: Traffic) -> bool:
        """Every command answered, both workers agree, and the counts add up to what was sent."""
        if any(c.command_id not in self.answers for _, c in self.commands):
            return False
        for model_type, views in self.samples.items():
            if None in views or views[0] != views[1]:
                return False
            commands = self.of(model_type)
            if views[0]["retrain_commands"] != len(commands):
                return False
            counted = sum(c.new_samples for _, c in commands) + views[0]["new_samples"]
            if counted != traffic.samples_of(model_type):
                return False
        return True


def _settle(
    running: Cluster, settings: KafkaSettings, traffic: Traffic, timeout: float
) -> Snapshot:
    """The first snapshot that is settled and equal to the one 2 s before it (bounded)."""
    deadline = time.monotonic() + timeout
    previous: Snapshot | None = None
    while True:
        assert not running.exited(), f"a service exited: {running.exited()}"
        snapshot = Snapshot.read(settings, running.workers)
        if (
            previous is not None
            and snapshot.settled(traffic)
            and len(snapshot.commands) == len(previous.commands)
            and snapshot.samples == previous.samples
        ):
            return snapshot
        if time.monotonic() >= deadline:
            return snapshot  # the assertions say what is missing
        previous = snapshot
        time.sleep(2)


def test_two_of_each_service_one_command_per_crossing_one_version_per_command_exact_tables(
    cluster: tuple[Cluster, KafkaSettings],
) -> None:
    running, settings = cluster
    topics = settings.topics
    bootstrap = settings.bootstrap_servers
    traffic = Traffic(bootstrap, topics.outcome_events, [r.url for r in running.registries])

    def still_running() -> None:
        assert not running.exited(), f"a service exited: {running.exited()}"

    started = time.monotonic()
    sent = traffic.run(TRAFFIC_SECONDS, still_running)
    traffic_seconds = time.monotonic() - started
    snapshot = _settle(running, settings, traffic, SETTLE_SECONDS)
    settle_seconds = time.monotonic() - started - traffic_seconds

    deployments = [
        ModelDeployed.model_validate_json(m.value())
        for m in read_topic(bootstrap, topics.model_deployed)
    ]
    decisions = [
        command
        for m in read_topic(bootstrap, topics.registry_commands)
        if (command := RegistryCommandIssued.model_validate_json(m.value())).issued_by == "auto"
    ]
    versions = {
        t: [
            httpx.get(f"{r.url}/models/{t}/versions", timeout=10).json() for r in running.registries
        ]
        for t in MODEL_TYPES
    }
    performance = {
        t: [get_json(f"{w.url}/performance/{t}?days=2") for w in running.workers]
        for t in MODEL_TYPES
    }
    commands = [c for _, c in snapshot.commands]
    rejected = Counter(
        e.reason
        for answers in snapshot.answers.values()
        for _, e in answers
        if e.type in REJECTIONS
    )
    print(
        f"\nscale-out: {sent} events in {traffic_seconds:.0f} s ({traffic.duplicates} re-sent, "
        f"{traffic.invalid} invalid), settled in {settle_seconds:.0f} s; "
        f"{sum(c.new_samples // THRESHOLD for c in commands)} crossings, {len(commands)} retrain "
        f"commands, {len(deployments)} models, "
        f"{sum(len(v[0]) for v in versions.values())} versions, rejected {dict(rejected)}, "
        f"{len(decisions)} decisions {dict(Counter(d.type.value for d in decisions))}"
    )

    _assert_both_workers_counted(settings, traffic)
    _assert_one_command_per_crossing(snapshot, traffic, versions)
    candidates = _assert_one_version_per_command(snapshot, versions)
    _assert_one_decision_per_experiment(decisions, candidates)
    _assert_exact_tables(performance, traffic)


def _assert_both_workers_counted(settings: KafkaSettings, traffic: Traffic) -> None:
    """The types' counters are on three of four partitions (two workers hold two each), both
    workers stayed in the group, and every valid event was forwarded once."""
    bootstrap = settings.bootstrap_servers
    partitions: dict[str, set[int]] = defaultdict(set)
    forwarded: Counter[str] = Counter()
    for message in read_topic(bootstrap, settings.topics.training_samples):
        partitions[(message.key() or b"").decode()].add(message.partition())
        forwarded[orjson.loads(message.value())["event_id"]] += 1
    assert len({p for found in partitions.values() for p in found}) == 3, partitions
    streams_group = f"{settings.topic_prefix}relearn-streams"
    assert group_members_with_partitions(bootstrap, streams_group) == 2, "a worker left the group"
    assert max(forwarded.values()) == 1, "an event was forwarded twice"
    assert len(forwarded) == sum(traffic.truth.values())


def _assert_one_command_per_crossing(
    snapshot: Snapshot, traffic: Traffic, versions: dict[str, list[Any]]
) -> None:
    """No command twice; each command's samples are its crossings; commands and counters hold
    every sample sent exactly once; one retrain in flight per type."""
    commands = [c for _, c in snapshot.commands]
    repeated = {i: n for i, n in Counter(c.command_id for c in commands).items() if n > 1}
    assert repeated == {}, f"retrain commands sent twice: {repeated}"
    for model_type in MODEL_TYPES:
        of_type = snapshot.of(model_type)
        views = snapshot.samples[model_type]
        assert views[0] == views[1], f"the two workers disagree on {model_type}: {views}"
        view = views[0]
        assert len(of_type) >= 2, f"{model_type}: the loop did not turn ({len(of_type)} commands)"
        assert view["retrain_commands"] == len(of_type), (model_type, view)
        for _, command in of_type:
            assert command.reason is RetrainReason.SAMPLE_THRESHOLD, command
            assert command.new_samples // THRESHOLD == 1 + command.held_crossings, command
        counted = sum(c.new_samples for _, c in of_type) + view["new_samples"]
        assert counted == traffic.samples_of(model_type), (
            f"{model_type}: commands and counter hold {counted} samples, "
            f"{traffic.samples_of(model_type)} were sent"
        )
        # A count left over the threshold is held by a candidate under test, nothing else.
        under_test = [
            v for v in versions[model_type][0] if v["status"] == "staging" and v["weight"]
        ]
        assert view["new_samples"] < THRESHOLD or under_test, (model_type, view)
        for (_, before), (at, after) in zip(of_type, of_type[1:], strict=False):
            answered = [t for t, _ in snapshot.answers.get(before.command_id, [])]
            assert answered and min(answered) <= at, (
                f"{after.command_id} sent before {before.command_id} was answered"
            )


def _assert_one_version_per_command(
    snapshot: Snapshot, versions: dict[str, list[Any]]
) -> dict[tuple[str, str], str]:
    """Every command answered, at most one version each, the same on both registries; returns
    the candidates (versions registered as staging) with their final status."""
    command_ids = {c.command_id for _, c in snapshot.commands}
    unanswered = sorted(command_ids - set(snapshot.answers))
    assert unanswered == [], f"commands never answered: {unanswered}"
    registered = Counter(
        answered_command(e)
        for e in snapshot.events
        if e.type is RegistryEventType.VERSION_REGISTERED
    )
    assert max(registered.values(), default=1) == 1, f"a command registered twice: {registered}"
    candidates: dict[tuple[str, str], str] = {}
    for model_type in MODEL_TYPES:
        answer_a, answer_b = versions[model_type]
        assert answer_a == answer_b, f"the registry instances disagree on {model_type}"
        assert answer_a, f"{model_type}: no version registered"
        per_command = Counter(v["command_id"] for v in answer_a)
        assert max(per_command.values()) == 1, f"two versions of one command: {per_command}"
        assert set(per_command) <= command_ids, set(per_command) - command_ids
        first = min(answer_a, key=lambda v: v["created_at"])
        for version in answer_a:
            if version is not first:
                candidates[(model_type, version["version"])] = version["status"]
    return candidates


def _assert_one_decision_per_experiment(
    decisions: list[RegistryCommandIssued], candidates: dict[tuple[str, str], str]
) -> None:
    """Each decision sent once, one verdict per candidate, a rollback (every candidate is worse)
    acted on by the registry."""
    assert max(Counter(d.command_id for d in decisions).values(), default=1) == 1, decisions
    per_candidate = Counter((d.model_type, d.version) for d in decisions)
    assert max(per_candidate.values(), default=1) == 1, f"two decisions: {per_candidate}"
    for decision in decisions:
        assert (decision.model_type, decision.version) in candidates, decision
        assert decision.type.value == "rollback", decision
        assert candidates[(decision.model_type, decision.version)] == "rolled_back", decision
    # A candidate this much worse (rate 0 against about 0.5) is rolled back at the first look,
    # once its first ABTEST_FIRST_LOOK outcomes have matured: decisions are what let the held
    # crossings train again.
    assert decisions, "no A/B decision at all"


def _assert_exact_tables(performance: dict[str, list[Any]], traffic: Traffic) -> None:
    """Both workers' daily performance: the samples (and positives) sent, per type and version."""
    for model_type in MODEL_TYPES:
        expected = {
            (version, day): n for (t, version, day), n in traffic.truth.items() if t == model_type
        }
        for rows in performance[model_type]:
            assert rows is not None, f"/performance/{model_type} did not answer"
            shown = {(r["version"], r["day"]): r["sample_count"] for r in rows}
            assert shown == expected, f"{model_type}: {shown} != {expected}"
            for row in rows:
                key = (model_type, row["version"], row["day"])
                rate = traffic.positives[key] / traffic.truth[key]
                assert row["positive_outcome_rate"] == pytest.approx(rate, abs=1e-9), row
