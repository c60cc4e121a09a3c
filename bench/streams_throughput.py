"""Streams throughput against the raw Kafka ceiling, and the retrain trigger latency, in one run.

Usage: .venv/bin/python bench/streams_throughput.py [--events 30000] [--repeats 3]
       [--crossings 50] [--background-rate 5000] [--threshold 20] [--profile]
Needs a broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092); prints Markdown tables.

(a) raw ceiling: one confluent-kafka consumer reads the topic and parses every value with orjson;
(b) the streams worker: one process (`relearn streams`), 4 partitions, full processing (validate,
    dedupe, forward, count, daily performance, trigger), same topic and data, timed from its first
    progress until every event is counted;
(c) trigger latency: background outcome events at --background-rate per second for one model
    type; for the other, threshold-1 events, wait until counted, then the crossing event: the time
    from producing it until its command is readable on retrain-commands.

--metrics-cost instead runs (b) in pairs, metrics on and off (RELEARN_STREAMS_METRICS), the order
alternating from pair to pair, each run on fresh topics with the same data; with metrics on,
/metrics is scraped every second while the worker runs (15 times the default interval).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from confluent_kafka import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.trigger_probe import BackgroundLoad, send_probes, time_to_command  # noqa: E402
from bus.admin import create_topics  # noqa: E402
from bus.clients import make_consumer, make_producer  # noqa: E402
from bus.local_broker import free_port  # noqa: E402
from bus.settings import KafkaSettings  # noqa: E402
from contracts.topics import Topics  # noqa: E402
from streams.testing import outcome_events  # noqa: E402
from tests.streams.harness import StreamsWorker, get_json, produce, wait_until  # noqa: E402


def raw_ceiling(bootstrap: str, topic: str, count: int) -> float:
    consumer = make_consumer(bootstrap, f"bench-raw-{uuid.uuid4().hex[:8]}")
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    seen = 0
    started = time.perf_counter()
    while seen < count:
        for message in consumer.consume(10_000, timeout=1.0):
            if message.error():
                continue
            seen += 1
            try:
                orjson.loads(message.value())
            except orjson.JSONDecodeError:
                pass
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed


def counted(worker: StreamsWorker, threshold: int, model_types: list[str]) -> int:
    total = 0
    for model_type in model_types:
        view = get_json(f"{worker.url}/samples/{model_type}") or {}
        total += view.get("retrain_commands", 0) * threshold + view.get("new_samples", 0)
    return total


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process's main thread so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def streams_throughput(
    bootstrap: str,
    prefix: str,
    events: int,
    workdir: Path,
    profile: bool,
    metrics: bool = True,
    ceiling: bool = True,
) -> tuple[float, float, float, str | None]:
    """(raw ceiling events/s, worker events/s, worker main-thread CPU us per event, profile).

    The CPU figure moves much less with a noisy neighbour than the wall-clock rate does, so it
    is the one to compare builds by."""
    workdir.mkdir(parents=True, exist_ok=True)
    topics = Topics(prefix)
    create_topics(bootstrap, topics, 4, 1)
    messages, truth = outcome_events(events, seed=3)
    produce(bootstrap, topics.outcome_events, messages)
    raw = raw_ceiling(bootstrap, topics.outcome_events, len(messages)) if ceiling else 0.0

    threshold = 1000
    worker = StreamsWorker(
        bootstrap,
        prefix,
        free_port(),
        workdir / "throughput",
        RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(threshold),
        RELEARN_STREAMS_METRICS=str(metrics).lower(),
    )
    valid = len(truth.valid_ids)
    model_types = sorted(truth.per_type)
    spy = None
    scraping = threading.Event()

    def scrape() -> None:  # as Prometheus would, every second
        while not scraping.wait(1.0):
            try:
                urllib.request.urlopen(f"{worker.url}/metrics", timeout=5).read()
            except OSError:
                pass

    scraper = threading.Thread(target=scrape, daemon=True)
    try:
        worker.start()
        worker.wait_web()
        try:
            wait_until(lambda: counted(worker, threshold, model_types) > 0, 120, "no progress")
        except AssertionError:
            print(worker.log_path.read_text()[-4000:], file=sys.stderr)
            raise
        started = time.perf_counter()
        cpu_started = main_thread_cpu_seconds(worker.process.pid)
        if metrics:
            scraper.start()
        if profile:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(worker.process.pid),
                    "-d",
                    "8",
                    "-f",
                    "raw",
                    "-o",
                    str(workdir / "streams.pyspy.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_until(
            lambda: counted(worker, threshold, model_types) >= valid, 1800, "not all counted"
        )
        elapsed = time.perf_counter() - started
        cpu_us = (main_thread_cpu_seconds(worker.process.pid) - cpu_started) / events * 1e6
        if spy is not None:
            spy.wait()
    finally:
        scraping.set()
        worker.stop()
    rate = events / elapsed
    summary = None
    if profile:
        kept = Path("test-artifacts/streams.pyspy.txt")
        kept.parent.mkdir(exist_ok=True)
        shutil.copy(workdir / "streams.pyspy.txt", kept)  # raw py-spy stacks, for a closer look
        summary = summarize_profile(kept)
    return raw, rate, cpu_us, summary


def metrics_cost(bootstrap: str, run: str, events: int, pairs: int, workdir: Path) -> None:
    """(b) with metrics on and off, in interleaved pairs: medians and their ratio."""
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for pair in range(pairs):
        order = (True, False) if pair % 2 == 0 else (False, True)
        for metrics in order:
            _, rate, cpu_us, _ = streams_throughput(
                bootstrap,
                f"bench-{run}-m{pair}{'on' if metrics else 'off'}-",
                events,
                workdir / f"m{pair}-{metrics}",
                False,
                metrics=metrics,
                ceiling=False,
            )
            runs[metrics].append((rate, cpu_us))
            print(
                f"pair {pair + 1}, metrics {'on ' if metrics else 'off'}: {rate:,.0f}/s, "
                f"{cpu_us:.1f} us main-thread CPU per event, load {os.getloadavg()[0]:.1f}"
            )
    on_rate = statistics.median(r for r, _ in runs[True])
    off_rate = statistics.median(r for r, _ in runs[False])
    on_cpu = statistics.median(c for _, c in runs[True])
    off_cpu = statistics.median(c for _, c in runs[False])
    print(
        f"\n| {events:,} outcome events, 4 partitions, median of {pairs} runs each "
        "| metrics off | metrics on | on/off |\n|---|---|---|---|"
    )
    print(f"| events/s | {off_rate:,.0f} | {on_rate:,.0f} | {on_rate / off_rate:.3f} |")
    print(
        f"| main-thread CPU per event (us) | {off_cpu:.1f} | {on_cpu:.1f} "
        f"| {on_cpu / off_cpu:.3f} |"
    )
    per_batch, per_event = tally_cost()
    print(
        f"\nin-process: a batch's counts handed to the metrics {per_batch:.1f} us per batch; "
        f"an event counted into its batch's tally {per_event:.2f} us"
    )


def tally_cost(rounds: int = 20_000) -> tuple[float, float]:
    """What metrics add on the loop's thread, timed in-process (microseconds): the per-batch
    hand-over of a typical batch's tally, and the per-event count (a dict update)."""
    from streams.metrics import BatchTally, StreamsMetrics

    metrics = StreamsMetrics(["calling_score", "outcome_prediction"], ["o", "s"], 1000, 86_400)

    def batch() -> None:
        tally = BatchTally(2500, 2500, {"calling_score": 1200, "outcome_prediction": 1200})
        tally.duplicates["calling_score"] = 50
        tally.dead_letters["schema"] = 25
        metrics.batch_done(tally, 0.1, "o", "s")

    started = time.perf_counter()
    for _ in range(rounds):
        batch()
    per_batch = (time.perf_counter() - started) / rounds * 1e6
    counts: dict[str, int] = {}
    model_type = "calling_score"
    started = time.perf_counter()
    for _ in range(rounds * 10):
        counts[model_type] = counts.get(model_type, 0) + 1
    per_event = (time.perf_counter() - started) / (rounds * 10) * 1e6
    return per_batch, per_event


def summarize_profile(path: Path) -> str:
    """Inclusive share of the main thread's samples by a few frames worth naming."""
    wanted = {
        "handle_outcome": "validate + dedupe (streams.processing.handle_outcome)",
        "validate_outcome": "  of which validation (contracts.validation.validate_outcome)",
        "handle_sample": "count + daily + A/B (streams.processing.handle_sample)",
        "parse_sample": "  of which parsing the sample (streams.processing.parse_sample)",
        "_on_outcome": "outcome hop incl. forward produce (Worker._on_outcome)",
        "_write_changelogs": "changelog writes, once per key per batch (Worker._write_changelogs)",
        "_next_batch": "consume a batch (Worker._next_batch)",
        "_commit": "flush + commit (Worker._commit)",
    }
    shares: dict[str, int] = dict.fromkeys(wanted, 0)
    total = 0
    if not path.exists():
        return "(no profile: py-spy missing?)"
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames[0].startswith("_run_module_as_main"):
            continue
        total += int(count)
        # py-spy names methods "Class.method": match on the function's own name
        names = {frame.split(" (")[0].rpartition(".")[2] for frame in frames}
        for key in wanted:
            if key in names:
                shares[key] += int(count)
    rows = [f"| {wanted[k]} | {shares[k] / max(total, 1):.0%} |" for k in wanted]
    return "| main thread, inclusive | share |\n|---|---|\n" + "\n".join(rows)


def trigger_latency(
    bootstrap: str,
    prefix: str,
    crossings: int,
    background_rate: float,
    threshold: int,
    workdir: Path,
) -> tuple[list[float], float]:
    topics = Topics(prefix)
    create_topics(bootstrap, topics, 4, 1)
    worker = StreamsWorker(
        bootstrap,
        prefix,
        free_port(),
        workdir / "latency",
        RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(threshold),
    )
    background = BackgroundLoad(bootstrap, topics.outcome_events, background_rate)
    commands = make_consumer(bootstrap, f"bench-lat-{uuid.uuid4().hex[:8]}")
    partitions = (
        commands.list_topics(topics.retrain_commands, timeout=10)
        .topics[topics.retrain_commands]
        .partitions
    )
    commands.assign([TopicPartition(topics.retrain_commands, p, 0) for p in partitions])
    probe = make_producer(bootstrap, **{"linger.ms": 0})
    latencies: list[float] = []
    try:
        worker.start()
        worker.wait_web()
        background.start()
        began = time.perf_counter()
        for crossing in range(crossings):
            send_probes(probe, topics.outcome_events, crossing, threshold - 1)
            wait_until(
                lambda: (
                    (get_json(f"{worker.url}/samples/outcome_prediction") or {}).get("new_samples")
                    == threshold - 1
                ),
                600,
                "probes not counted",
            )
            latency = time_to_command(probe, topics.outcome_events, crossing, commands, 600)
            if latency is None:
                raise RuntimeError(f"crossing {crossing}: no command within 600 s")
            latencies.append(latency)
        achieved = background.sent / (time.perf_counter() - began)
    finally:
        background.stop()
        commands.close()
        worker.stop()
    return latencies, achieved


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--crossings", type=int, default=50)
    parser.add_argument("--background-rate", type=float, default=5000.0)
    parser.add_argument("--threshold", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="(a) then (b), this many times")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker in (b)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--metrics-cost",
        action="store_true",
        help="only (b), metrics on vs off, --repeats interleaved pairs",
    )
    args = parser.parse_args()
    bootstrap = KafkaSettings().bootstrap_servers
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        workdir = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start")
        if args.metrics_cost:
            metrics_cost(bootstrap, run, args.events, args.repeats, workdir)
            print(f"machine load {os.getloadavg()[0]:.1f} at end")
            return
        if not args.skip_throughput:
            ceilings, rates, cpus = [], [], []
            profile = None
            for repeat in range(args.repeats):  # each on its own topics, same data
                ceiling, rate, cpu_us, summary = streams_throughput(
                    bootstrap,
                    f"bench-{run}-t{repeat}-",
                    args.events,
                    workdir / f"r{repeat}",
                    args.profile and repeat == 0,
                )
                ceilings.append(ceiling)
                rates.append(rate)
                cpus.append(cpu_us)
                profile = profile or summary
                print(
                    f"repeat {repeat + 1}: (a) {ceiling:,.0f}/s, (b) {rate:,.0f}/s "
                    f"({cpu_us:.1f} us main-thread CPU per event), load {os.getloadavg()[0]:.1f}"
                )
            ceiling, rate = statistics.median(ceilings), statistics.median(rates)
            ratios = [r / c for r, c in zip(rates, ceilings, strict=True)]
            print(
                f"\n| {args.events:,} outcome events, 4 partitions, median of {args.repeats} "
                "| events/s |\n|---|---|"
            )
            print(
                f"| (a) raw ceiling: confluent-kafka consume + orjson, 1 process | {ceiling:,.0f} |"
            )
            print(f"| (b) streams worker, 1 process, full processing | {rate:,.0f} |")
            print(
                f"| ratio (b)/(a), median of the runs' ratios | {statistics.median(ratios):.3f} |"
            )
            print(
                "| (b) worker main-thread CPU per event (us), median "
                f"| {statistics.median(cpus):.1f} |"
            )
            if profile:
                print("\n" + profile)
        if not args.skip_latency:
            latencies, achieved = trigger_latency(
                bootstrap,
                f"bench-{run}-l-",
                args.crossings,
                args.background_rate,
                args.threshold,
                workdir,
            )
            print(
                f"\n| trigger latency, {len(latencies)} crossings, background "
                f"{args.background_rate:,.0f}/s requested ({achieved:,.0f}/s produced) "
                "| ms |\n|---|---|"
            )
            print(f"| p50 | {1000 * statistics.median(latencies):.0f} |")
            print(f"| p99 | {1000 * percentile(latencies, 0.99):.0f} |")
            print(f"| max | {1000 * max(latencies):.0f} |")
            print("series (ms):", " ".join(f"{1000 * x:.0f}" for x in latencies))
        print(f"machine load {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
