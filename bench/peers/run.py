"""relearn's streams worker side by side with faust-streaming, quix-streams and the raw ceiling.

Usage: .venv-peers/bin/python -m bench.peers.run [--events 200000] [--rounds 3]
       [--engines relearn quix-alo quix-eos faust-take faust-agents] [--skip-latency] [--skip-kill]
(`make bench-peers` runs it at full size.) Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts its
own broker in a temporary directory. Prints Markdown tables.

Every engine runs the same job on the same generated data (streams.testing.outcome_events):
outcome-events -> validate (contracts' own functions) -> dead-letter / de-duplicate / forward to
training-samples; training-samples -> count per model type (a retrain command at every threshold
crossing) and daily performance per version. Each round gives every engine fresh topics holding
the same messages, in a rotated order (interleaved), after the raw ceiling of that round:
- end to end: from the engine's process start until every valid event is counted in its tables
  (relearn: its web views; peers: their tables' changelog topics, i.e. what survives a crash);
- steady rate: all messages over the time from the first counted sample to the last;
- CPU: the engine process's user + system time (all threads) per message, from its start;
- exactness: its tables and the ids on training-samples against the generator's ground truth,
  after it was left alone and, once per engine, after a SIGKILL half-way and a restart;
- trigger latency at --background-rate (for engines whose median steady rate is above it; one
  that then falls behind is reported so): from producing the threshold-crossing event until its
  command is readable on retrain-commands.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.peers.job import PeerSettings  # noqa: E402
from bench.streams_throughput import percentile, raw_ceiling  # noqa: E402
from bench.trigger_probe import BackgroundLoad, send_probes, time_to_command  # noqa: E402
from bus import local_broker  # noqa: E402
from bus.admin import create_topics  # noqa: E402
from bus.clients import make_admin, make_consumer, make_producer  # noqa: E402
from bus.local_broker import free_port  # noqa: E402
from bus.settings import KafkaSettings  # noqa: E402
from contracts.topics import Topics  # noqa: E402
from streams import rules  # noqa: E402
from streams.testing import MODEL_TYPES, GroundTruth, outcome_events  # noqa: E402
from tests.streams.harness import StreamsWorker, get_json, produce  # noqa: E402

PARTITIONS = 4
THRESHOLD = 1000  # retrain threshold in the throughput and kill runs
Daily = dict[tuple[str, str, str], tuple[int, int, float, float]]


@dataclass
class Tables:
    """An engine's tables in one shape: count per model type; day sums per (type, version, day)."""

    per_type: dict[str, int] = field(default_factory=dict)
    daily: Daily = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return sum(self.per_type.values())


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (all its threads) so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Engines: each starts as its own process and shows its tables.


class ChangelogTail:
    """The last value per key of a peer's changelog topics, read as they grow."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = make_consumer(
            bootstrap, f"bench-tail-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}
        )
        self.consumer.assign([TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)])
        self.values: dict[bytes, Any] = {}

    def read(self) -> dict[bytes, Any]:
        while batch := self.consumer.consume(10_000, timeout=0.05):
            for message in batch:
                if message.error() is None:
                    value = message.value()
                    self.values[message.key()] = None if value is None else orjson.loads(value)
        return self.values

    def close(self) -> None:
        self.consumer.close()


class Running:
    """One engine process: start, tables, SIGKILL, stop."""

    def __init__(self, engine: Engine, bootstrap: str, prefix: str, workdir: Path) -> None:
        self.engine, self.bootstrap, self.prefix, self.workdir = engine, bootstrap, prefix, workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.worker: StreamsWorker | None = None
        self.tail: ChangelogTail | None = None
        self.settings = PeerSettings(
            bootstrap, prefix, workdir / "state", engine.commit_interval, engine.threshold,
            engine.variant,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        process = self.worker.process if self.worker else self.process
        assert process is not None
        return process.pid

    def log_tail(self, lines: int = 30) -> str:
        log = self.worker.log_path if self.worker else self.workdir / "engine.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        process = self.worker.process if self.worker else self.process
        return process is not None and process.poll() is None

    def start(self) -> Running:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.engine.kind == "relearn":
            self.worker = self.worker or StreamsWorker(
                self.bootstrap,
                self.prefix,
                free_port(),
                self.workdir / "state",
                RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(self.engine.threshold),
                RELEARN_STREAMS_COMMIT_INTERVAL_SECONDS=str(self.engine.commit_interval),
            )
            self.worker.start()
            return self
        module = f"bench.peers.{self.engine.kind}_app"
        argv = [
            sys.executable,
            "-m",
            module,
            *(["worker", "--without-web", "-l", "warn"] * (self.engine.kind == "faust")),
        ]
        env = {**os.environ, **self.settings.to_env(), "PYTHONPATH": str(REPO)}
        log = (self.workdir / "engine.log").open("ab")
        self.process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def _changelogs(self) -> list[str]:
        names = make_admin(self.bootstrap).list_topics(timeout=10).topics
        app = self.settings.app_id
        if self.engine.kind == "faust":
            wanted = [f"{app}-counts-changelog", f"{app}-daily-changelog"]
            return [name for name in wanted if name in names]
        training = self.settings.topics.training_samples
        return [n for n in names if n.startswith(f"changelog__{app}--") and training in n]

    def tables(self) -> Tables | None:
        """What the engine's tables hold now (None while it cannot tell yet)."""
        if self.worker is not None:
            return relearn_tables(self.worker.url, self.engine.threshold)
        if self.tail is None:
            topics = self._changelogs()
            if not topics:
                return None
            self.tail = ChangelogTail(self.bootstrap, topics)
        return peer_tables(self.engine.kind, self.tail.read())

    def final_tables(self) -> Tables:
        """The tables as durably stored: a fresh read of every changelog to its end."""
        if self.worker is not None:
            tables = self.tables()
            assert tables is not None, "relearn's web views did not answer"
            return tables
        values: dict[bytes, Any] = {}
        for topic in self._changelogs():
            for message in read_all(self.bootstrap, topic):
                value = message.value()
                values[message.key()] = None if value is None else orjson.loads(value)
        return peer_tables(self.engine.kind, values)

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        elif self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.tail is not None:
            self.tail.close()
            self.tail = None
        if self.worker is not None:
            self.worker.stop()
        elif self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def relearn_tables(url: str, threshold: int) -> Tables | None:
    tables = Tables()
    for model_type in MODEL_TYPES:
        view = get_json(f"{url}/samples/{model_type}")
        rows = get_json(f"{url}/performance/{model_type}?days=30")
        if view is None or rows is None:
            return None
        tables.per_type[model_type] = view["retrain_commands"] * threshold + view["new_samples"]
        for row in rows:
            n = row["sample_count"]
            tables.daily[(row["model_type"], row["version"], row["day"])] = (
                n,
                round(row["positive_outcome_rate"] * n),
                row["avg_prediction"] * n,
                row["avg_outcome_score"] * n,
            )
    return tables


def peer_tables(kind: str, values: dict[bytes, Any]) -> Tables:
    """faust: keys are the table's JSON keys; quix: `<JSON message key>|<JSON state key>`."""
    tables = Tables()
    for raw_key, value in values.items():
        if value is None:
            continue
        if kind == "faust":
            key = orjson.loads(raw_key)
            model_type = key
        else:
            prefix, _, state_key = raw_key.partition(b"|")
            model_type, key = orjson.loads(prefix), orjson.loads(state_key)
        if "|" in key:
            key_type, version, day = rules.split_performance_key(key)
            tables.daily[(key_type, version, day)] = tuple(value)  # type: ignore[assignment]
        else:
            tables.per_type[model_type] = value
    return tables


@dataclass(frozen=True)
class Engine:
    name: str
    label: str
    kind: str  # relearn | quix | faust
    variant: str = ""
    commit_interval: float = 1.0
    threshold: int = THRESHOLD

    def with_threshold(self, threshold: int) -> Engine:
        return Engine(
            self.name, self.label, self.kind, self.variant, self.commit_interval, threshold
        )


def engines(commit_interval: float) -> dict[str, Engine]:
    return {
        e.name: e
        for e in (
            Engine("relearn", "relearn streams worker", "relearn", "relearn", commit_interval),
            Engine("quix-alo", "quix-streams, at-least-once", "quix", "at-least-once", commit_interval),
            Engine("quix-eos", "quix-streams, exactly-once", "quix", "exactly-once", commit_interval),
            Engine("faust-take", "faust-streaming, `take` batches", "faust", "take", commit_interval),
            Engine("faust-agents", "faust-streaming, per-event agents", "faust", "agents", commit_interval),
        )
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Checks against the ground truth.


def verdict(tables: Tables, forwarded: Counter[str], truth: GroundTruth) -> str:
    """ "exact", or what differs from the ground truth."""
    problems = []
    over = tables.counted - len(truth.valid_ids)
    if any(tables.per_type.get(t, 0) != n for t, n in truth.per_type.items()):
        problems.append(f"counts {over:+,}")
    off = sum(
        1
        for key, day in truth.daily.items()
        if not _same_day(tables.daily.get(key), day.sample_count, day.positives, day.prediction_sum)
    )
    if off or set(tables.daily) - set(truth.daily):
        problems.append(f"{off} of {len(truth.daily)} day rows off")
    lost = len(truth.valid_ids - set(forwarded))
    if lost:
        problems.append(f"{lost:,} ids never forwarded")
    if set(forwarded) - truth.valid_ids:
        problems.append("invalid or unknown ids forwarded")
    repeats = sum(forwarded.values()) - len(forwarded)
    text = "; ".join(problems) or "exact"
    return text + (f" ({repeats:,} re-forwarded)" if repeats else "")


def _same_day(got: tuple[int, int, float, float] | None, n: int, pos: int, pred: float) -> bool:
    return (
        got is not None
        and got[0] == n
        and got[1] == pos
        and math.isclose(got[2], pred, rel_tol=1e-9, abs_tol=1e-9)
    )


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed message of a topic up to its current end. Unlike the tests' `read_topic`,
    it also ends on a transactional topic, whose last offset is a commit marker no read returns."""
    consumer = make_consumer(
        bootstrap, f"bench-read-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        messages: list[Any] = []
        deadline, last_read = time.monotonic() + 120, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_read < 3:
            batch = [m for m in consumer.consume(10_000, timeout=0.2) if m.error() is None]
            if batch:
                messages += batch
                last_read = time.monotonic()
            positions = consumer.position(tps)
            if all(tp.offset >= end or end == 0 for tp, end in zip(positions, ends, strict=True)):
                break
        return messages
    finally:
        consumer.close()


def forwarded_ids(bootstrap: str, topics: Topics) -> Counter[str]:
    return Counter(
        orjson.loads(m.value())["event_id"] for m in read_all(bootstrap, topics.training_samples)
    )


# ---------------------------------------------------------------------------------------------
# Measures.


@dataclass
class Run:
    end_to_end: float | None = None
    steady: float | None = None
    cpu_us: float | None = None
    counted: int = 0
    exact: str = ""
    load: float = 0.0


def throughput(
    engine: Engine,
    bootstrap: str,
    prefix: str,
    workdir: Path,
    truth: GroundTruth,
    events: int,
    timeout: float,
) -> Run:
    run = Run(load=os.getloadavg()[0])
    valid = len(truth.valid_ids)
    running = Running(engine, bootstrap, prefix, workdir)
    started = time.perf_counter()
    running.start()
    first = None
    try:
        while time.perf_counter() - started < timeout:
            tables = running.tables()
            counted = tables.counted if tables else 0
            now = time.perf_counter()
            if counted and first is None:
                first = now
            run.counted = counted
            if counted >= valid:
                run.end_to_end = now - started
                run.steady = events / (now - (first or started)) if now > (first or 0) else None
                run.cpu_us = process_cpu_seconds(running.pid) / events * 1e6
                break
            if not running.alive():
                break
            time.sleep(0.2)
        if run.end_to_end is None:
            print(
                f"{engine.name} did not finish; its log ends:\n{running.log_tail()}",
                file=sys.stderr,
            )
        time.sleep(2 * engine.commit_interval + 1)  # anything counted twice shows too
        final = running.final_tables() if running.worker else None
    finally:
        running.stop()
    final = final or running.final_tables()
    run.exact = verdict(final, forwarded_ids(bootstrap, Topics(prefix)), truth)
    return run


def after_kill(
    engine: Engine, bootstrap: str, prefix: str, workdir: Path, truth: GroundTruth, timeout: float
) -> str:
    """SIGKILL once ~40% is counted, restart on the same state and group, compare when settled."""
    valid = len(truth.valid_ids)
    running = Running(engine, bootstrap, prefix, workdir)
    started = time.perf_counter()
    running.start()
    try:
        while (tables := running.tables()) is None or tables.counted < 0.4 * valid:
            if time.perf_counter() - started > timeout or not running.alive():
                return "did not reach 40% before the kill"
            time.sleep(0.1)
        at_kill = tables.counted
        running.kill()
        if running.tail is not None:
            running.tail.close()
            running.tail = None
        restarted = time.perf_counter()
        running.start()
        last, stable_since, recovered = -1, time.perf_counter(), None
        while time.perf_counter() - started < timeout:
            tables = running.tables()
            counted = tables.counted if tables else -1
            if counted >= valid and recovered is None:
                recovered = time.perf_counter() - restarted
            # Settled: unchanged for a few commits once all is counted; while short of it, for
            # longer than any engine's session timeout (faust's is 60 s), which a restart after
            # a SIGKILL may wait out before its partitions come back.
            settle = 3 * engine.commit_interval + 5 if counted >= valid else 150
            if counted != last:
                last, stable_since = counted, time.perf_counter()
            elif time.perf_counter() - stable_since > settle:
                break
            time.sleep(0.3)
        final = running.final_tables() if running.worker else None
    finally:
        running.stop()
    final = final or running.final_tables()
    if at_kill >= valid:
        took = ", but killed only once all was counted (its tables show a commit at a time)"
    else:
        took = f", all counted {recovered:.0f} s after the restart" if recovered else ""
    return verdict(final, forwarded_ids(bootstrap, Topics(prefix)), truth) + took


def trigger_latency(
    engine: Engine,
    bootstrap: str,
    prefix: str,
    workdir: Path,
    crossings: int,
    background_rate: float,
    threshold: int,
) -> str:
    """p50 / p99 / max ms from producing a crossing event to its command on retrain-commands."""
    topics = Topics(prefix)
    create_topics(bootstrap, topics, PARTITIONS, 1)
    running = Running(engine.with_threshold(threshold), bootstrap, prefix, workdir)
    background = BackgroundLoad(bootstrap, topics.outcome_events, background_rate)

    commands = make_consumer(bootstrap, f"bench-lat-{uuid.uuid4().hex[:8]}")
    commands.assign([TopicPartition(topics.retrain_commands, p, 0) for p in range(PARTITIONS)])
    probe = make_producer(bootstrap, **{"linger.ms": 0})
    latencies: list[float] = []

    def probes_counted() -> int:
        tables = running.tables()
        return tables.per_type.get("outcome_prediction", 0) if tables else -1

    try:
        running.start()
        background.start()
        began = time.perf_counter()
        for crossing in range(crossings):
            send_probes(probe, topics.outcome_events, crossing, threshold - 1)
            deadline = time.perf_counter() + (120 if crossing == 0 else 30)
            while probes_counted() != (crossing + 1) * threshold - 1:
                if time.perf_counter() > deadline:
                    return _latency_text(latencies, "fell behind: probes not counted in time")
                time.sleep(0.05)
            latency = time_to_command(probe, topics.outcome_events, crossing, commands, 30)
            if latency is None:
                return _latency_text(latencies, "no command within 30 s")
            latencies.append(latency)
        achieved = background.sent / (time.perf_counter() - began)
    finally:
        background.stop()
        commands.close()
        running.stop()
    return _latency_text(latencies, f"{achieved:,.0f}/s produced")


def _latency_text(latencies: list[float], note: str) -> str:
    if not latencies:
        return f"n/a ({note})"
    ms = [1000 * x for x in latencies]
    return (
        f"{statistics.median(ms):.0f} / {percentile(ms, 0.99):.0f} / {max(ms):.0f} "
        f"({len(ms)} crossings, {note})"
    )


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--duplicate-rate", type=float, default=0.02)
    parser.add_argument("--invalid-rate", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--engines", nargs="+", choices=list(engines(1.0)), default=list(engines(1.0))
    )
    parser.add_argument("--commit-interval", type=float, default=1.0, help="every engine's")
    parser.add_argument("--crossings", type=int, default=20)
    parser.add_argument("--background-rate", type=float, default=5000.0)
    parser.add_argument("--threshold", type=int, default=20, help="latency runs' threshold")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the engines and broker
    chosen = [engines(args.commit_interval)[name] for name in args.engines]
    if any(engine.kind == "faust" for engine in chosen):
        from aiokafka.codec import has_lz4

        if not has_lz4():  # faust's consumers would crash on relearn's first lz4 batch
            parser.error("aiokafka cannot read lz4 here: pip install -e '.[peers]' (aiokafka[lz4])")
    messages, truth = outcome_events(
        args.events, seed=3, duplicate_rate=args.duplicate_rate, invalid_rate=args.invalid_rate
    )
    timeout = 120 + args.events / 400  # the slowest peer measured, ~1,000/s, gets 2.5x that
    run_id = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        workdir = Path(tmp)
        kafka = KafkaSettings()
        # a broker of its own unless KAFKA_BOOTSTRAP_SERVERS names one
        bootstrap = (
            kafka.bootstrap_servers if "bootstrap_servers" in kafka.model_fields_set else None
        )
        layout = None
        if not bootstrap:
            layout = local_broker.ClusterLayout(workdir / "broker", 1, free_port())
            bootstrap = local_broker.up(layout, timeout=300)
        loads = [os.getloadavg()[0]]
        print(
            f"{args.events:,} events ({len(truth.valid_ids):,} valid, {truth.duplicates:,} repeats, "
            f"{truth.invalid:,} poison), {PARTITIONS} partitions, {args.rounds} rounds; "
            f"{os.cpu_count()} cores, load {loads[0]:.1f} at start",
            flush=True,
        )
        try:
            ceilings: list[float] = []
            runs: dict[str, list[Run]] = {e.name: [] for e in chosen}
            for round_ in range(args.rounds):
                order = chosen[round_ % len(chosen) :] + chosen[: round_ % len(chosen)]
                for position, engine in enumerate(order):
                    prefix = f"peers-{run_id}-r{round_}-{engine.name}-"
                    create_topics(bootstrap, Topics(prefix), PARTITIONS, 1)
                    produce(bootstrap, Topics(prefix).outcome_events, messages)
                    if position == 0:
                        ceilings.append(
                            raw_ceiling(bootstrap, Topics(prefix).outcome_events, len(messages))
                        )
                        print(f"round {round_ + 1}: raw ceiling {ceilings[-1]:,.0f}/s", flush=True)
                    run = throughput(
                        engine,
                        bootstrap,
                        prefix,
                        workdir / prefix,
                        truth,
                        len(messages),
                        timeout,
                    )
                    runs[engine.name].append(run)
                    loads.append(os.getloadavg()[0])
                    print(
                        f"round {round_ + 1}: {engine.name}: end to end "
                        f"{_num(run.end_to_end, '{:.1f} s')}, steady {_num(run.steady, '{:,.0f}/s')}, "
                        f"{_num(run.cpu_us, '{:.0f} us CPU/event')}, counted {run.counted:,}, "
                        f"{run.exact}; load {run.load:.1f}",
                        flush=True,
                    )
            killed: dict[str, str] = {}
            if not args.skip_kill:
                for engine in chosen:
                    prefix = f"peers-{run_id}-kill-{engine.name}-"
                    create_topics(bootstrap, Topics(prefix), PARTITIONS, 1)
                    produce(bootstrap, Topics(prefix).outcome_events, messages)
                    killed[engine.name] = after_kill(
                        engine, bootstrap, prefix, workdir / prefix, truth, timeout * 2
                    )
                    loads.append(os.getloadavg()[0])
                    print(f"SIGKILL + restart: {engine.name}: {killed[engine.name]}", flush=True)
            latency: dict[str, str] = {}
            if not args.skip_latency:
                for engine in chosen:
                    rates = [r.steady for r in runs[engine.name] if r.steady]
                    if not rates or statistics.median(rates) < args.background_rate:
                        latency[engine.name] = (
                            f"n/a (steady rate below {args.background_rate:,.0f}/s)"
                        )
                    else:
                        latency[engine.name] = trigger_latency(
                            engine,
                            bootstrap,
                            f"peers-{run_id}-lat-{engine.name}-",
                            workdir / f"lat-{engine.name}",
                            args.crossings,
                            args.background_rate,
                            args.threshold,
                        )
                    loads.append(os.getloadavg()[0])
                    print(f"trigger latency: {engine.name}: {latency[engine.name]}", flush=True)
        finally:
            if layout is not None:
                local_broker.down(layout)
    ceiling = statistics.median(ceilings)
    print(
        f"\n| {args.events:,} events, {PARTITIONS} partitions, 1 process each, "
        f"median of {args.rounds} | end to end (s) | steady (events/s) | of ceiling "
        "| CPU per event (us) | left alone | after SIGKILL + restart "
        f"| trigger latency at {args.background_rate:,.0f}/s, p50 / p99 / max (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(f"| raw ceiling: confluent-kafka consume + orjson | | {ceiling:,.0f} | 1 | | | | |")
    for engine in chosen:
        done = runs[engine.name]
        e2e = [r.end_to_end for r in done if r.end_to_end]
        steady = [r.steady for r in done if r.steady]
        cpu = [r.cpu_us for r in done if r.cpu_us]
        finished = f" ({len(e2e)} of {len(done)} finished)" if len(e2e) < len(done) else ""
        print(
            f"| {engine.label} | {_num(_median(e2e), '{:.1f}')}{finished} "
            f"| {_num(_median(steady), '{:,.0f}')} "
            f"| {_num(_median(steady) and _median(steady) / ceiling, '{:.2f}')} "  # type: ignore[operator]
            f"| {_num(_median(cpu), '{:.0f}')} | {'; '.join(sorted({r.exact for r in done}))} "
            f"| {killed.get(engine.name, 'not run')} | {latency.get(engine.name, 'not run')} |"
        )
    print(
        f"\nmachine load (1-min average) {min(loads):.1f}-{max(loads):.1f} "
        f"(start {loads[0]:.1f}, end {os.getloadavg()[0]:.1f}); "
        f"ceiling per round: {', '.join(f'{c:,.0f}' for c in ceilings)}"
    )
    for engine in chosen:
        series = ", ".join(
            f"{_num(r.end_to_end, '{:.1f} s')} / {_num(r.steady, '{:,.0f}/s')}"
            for r in runs[engine.name]
        )
        print(f"- {engine.name}, per round (end to end / steady): {series}")
    failed = [e.name for e in chosen if any(r.exact != "exact" for r in runs[e.name])]
    if failed:  # left alone, every engine must count exactly: else the table measured a failure
        print(f"\nNOT EXACT when left alone: {', '.join(failed)}", flush=True)
        return 1
    return 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


if __name__ == "__main__":
    sys.exit(main())
