"""Benchmark: command-to-deployed time of the trainer by phase vs a bare torch loop; ORT vs torch latency.

The worker is the real one (`RetrainWorker.run`, consumer group) and its gate compares against a
real registry: `relearn registry` started as a subprocess on a free port (Kafka off, so every
repeat is gated against the same production version), holding a production version trained on
the same samples for a few epochs (`--production-epochs`), so the gate fetches its ONNX over HTTP,
scores it on the candidate's test rows and passes. The read cap (RELEARN_TRAINING_MAX_RECORDS) is
raised to the size, so every sample produced is read.

Run (a broker must answer at KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092):
    .venv/bin/python bench/training_pipeline.py [--sizes 10000 100000] [--repeats 3] [--epochs 10]
    .venv/bin/python bench/training_pipeline.py --quick      # 2,000 samples, 3 epochs, 1 command
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from confluent_kafka import OFFSET_END, TopicPartition
from pydantic_settings import BaseSettings, SettingsConfigDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.registry_route import free_port, start_server, stop_server  # noqa: E402
from bus.admin import create_topics  # noqa: E402
from bus.clients import READER, make_consumer, make_producer  # noqa: E402
from bus.settings import KafkaSettings  # noqa: E402
from contracts.events import RetrainReason, RetrainRequested, to_json  # noqa: E402
from contracts.model_types import Loss, ModelTypeCatalog, ModelTypeSpec  # noqa: E402
from contracts.topics import Topics  # noqa: E402
from training.artifacts import LocalArtifactStore  # noqa: E402
from training.dataset import Dataset, Split, split_dataset  # noqa: E402
from training.export import score_onnx, session_for  # noqa: E402
from training.fit import batch_loss  # noqa: E402
from training.hyperparameters import Hyperparameters  # noqa: E402
from training.network import ScoringNetwork, build_network, configure_torch, predict  # noqa: E402
from training.pipeline import (  # noqa: E402
    PipelineConfig,
    TrainingPipeline,
    deployment_event,
)
from training.production import FixedProductionSource  # noqa: E402
from training.samples import KafkaSampleReader  # noqa: E402
from training.service import build_worker, make_command_consumer  # noqa: E402
from training.settings import TrainerSettings  # noqa: E402
from training.synthetic import synthetic_samples  # noqa: E402
from training.worker import CommandOutcome  # noqa: E402

MODEL_TYPE = "calling_score"


def produce_samples(bootstrap: str, topic: str, count: int) -> None:
    producer = make_producer(bootstrap, **{"linger.ms": 50, "batch.size": 1 << 20})
    for start in range(0, count, 10_000):
        for sample in synthetic_samples(min(10_000, count - start), MODEL_TYPE, seed=start):
            producer.produce(topic, key=MODEL_TYPE.encode(), value=orjson.dumps(sample))
            producer.poll(0)
    assert producer.flush(60) == 0


def wait_for_one(bootstrap: str, topics: list[str], timeout: float = 900.0) -> tuple[float, str]:
    """(when, topic) of the first record that appears on any of `topics` from now on."""
    consumer = make_consumer(bootstrap, f"bench-{uuid.uuid4().hex[:8]}", READER)
    consumer.assign(
        [
            TopicPartition(topic, p, OFFSET_END)
            for topic in topics
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                return time.perf_counter(), message.topic() or ""
        raise TimeoutError(f"nothing on {topics}")
    finally:
        consumer.close()


def production_registry(
    spec: ModelTypeSpec, dataset: Dataset, hyper: Hyperparameters, epochs: int, root: Path
) -> tuple[Path, Path]:
    """A registry state (SQLite + artifacts) whose production version is the same network
    trained for `epochs` on the same samples: weaker than a full training, so the gate passes."""
    from registry.artifacts import ArtifactStore
    from registry.service import RegistryService
    from registry.store import open_store

    state_dir, artifact_dir = root / "registry", root / "registry-artifacts"
    state_dir.mkdir(parents=True)
    short = PipelineConfig(hyper=dataclasses.replace(hyper, max_epochs=epochs, patience=epochs))
    catalog = ModelTypeCatalog([spec])
    model = TrainingPipeline(catalog, short, FixedProductionSource()).build(spec, dataset)
    stored = LocalArtifactStore(artifact_dir).put(spec.name, model.proven.onnx)
    store = open_store(f"sqlite:///{state_dir / 'registry.db'}")
    try:
        service = RegistryService(store, ArtifactStore(artifact_dir.resolve()), catalog)
        result = service.register_deployment(deployment_event(model, stored, None, None))
        assert result.plan is not None and result.plan.insert is not None, result
    finally:
        store.close()
    return state_dir, artifact_dir


def bare_torch_loop(
    spec: ModelTypeSpec, split: Split, hyper: Hyperparameters, epochs: int
) -> float:
    """The same network and optimizer on in-memory tensors, with a validation pass per epoch."""
    configure_torch(hyper.threads)
    started = time.perf_counter()
    network = build_network(spec, split.train.features, hyper.seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=hyper.learning_rate)
    x, y = torch.from_numpy(split.train.features), torch.from_numpy(split.train.targets)
    x_val, y_val = (
        torch.from_numpy(split.validation.features),
        torch.from_numpy(split.validation.targets),
    )
    generator = torch.Generator().manual_seed(hyper.seed)
    for _ in range(epochs):
        network.train()
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], hyper.batch_size):
            index = order[start : start + hyper.batch_size]
            loss = batch_loss(network, x[index], y[index], spec.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            float(torch.mean((network(x_val).reshape(-1) - y_val) ** 2))
    return time.perf_counter() - started


def run_size(
    bootstrap: str, count: int, epochs: int | None, repeats: int, production_epochs: int
) -> dict[str, Any]:
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}-")
    create_topics(bootstrap, topics, partitions=4, replication=1)
    produce_samples(bootstrap, topics.training_samples, count)
    with tempfile.TemporaryDirectory() as state:
        port = free_port()
        settings = TrainerSettings(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            topic_prefix=topics.prefix,
            state_dir=Path(state),
            registry_url=f"http://127.0.0.1:{port}",
            faults_dir=Path(state) / "faults",  # never a fault file of the working directory
            trainer_group_id=f"bench-{uuid.uuid4().hex[:8]}",
            training_max_records=max(count, 1),
            **({"training_max_epochs": epochs, "training_patience": epochs} if epochs else {}),
        )
        spec = settings.model_types().get(MODEL_TYPE)
        assert spec is not None
        hyper = settings.hyperparameters()
        # The window the worker will read, read once here: the production model's data and the
        # bare loop's split (the same seed gives the worker's split).
        read = KafkaSampleReader(
            bootstrap, topics.training_samples, max_records=settings.training_max_records
        ).read_window(spec, datetime.now(UTC) - timedelta(days=365))
        split = split_dataset(read.dataset, hyper.seed)
        registry_state, registry_artifacts = production_registry(
            spec, read.dataset, hyper, production_epochs, Path(state)
        )
        registry = start_server(registry_state, registry_artifacts, port, 1.0)
        worker = build_worker(settings)
        outcomes: list[CommandOutcome] = []
        publish_times: list[float] = []
        handle, publish = worker.handle_retrain_command, worker.publish

        def timed_handle(*args: Any) -> CommandOutcome:
            outcome = handle(*args)
            outcomes.append(outcome)
            return outcome

        def timed_publish(*args: Any) -> None:
            started = time.perf_counter()
            publish(*args)
            publish_times.append(time.perf_counter() - started)

        worker.handle_retrain_command = timed_handle  # type: ignore[method-assign]
        worker.publish = timed_publish  # type: ignore[method-assign]
        stop = threading.Event()
        consumer = make_command_consumer(settings)
        thread = threading.Thread(target=worker.run, args=(consumer, stop))
        thread.start()
        time.sleep(4.0)  # let the group settle: measure the command, not the first join
        producer = make_producer(bootstrap)
        producer.produce(topics.outcome_events, value=b"{}")  # connect and init before timing
        producer.flush(10)
        runs: list[dict[str, Any]] = []
        try:
            for _ in range(repeats):
                settled: list[tuple[float, str]] = []
                watcher = threading.Thread(
                    target=lambda out=settled: out.append(
                        wait_for_one(bootstrap, [topics.model_deployed, topics.registry_events])
                    )
                )
                watcher.start()
                time.sleep(1.5)
                retrain = RetrainRequested(model_type=MODEL_TYPE, reason=RetrainReason.MANUAL)
                sent = time.perf_counter()
                producer.produce(
                    topics.retrain_commands, key=MODEL_TYPE.encode(), value=to_json(retrain)
                )
                producer.flush(10)
                watcher.join()
                while len(publish_times) <= len(runs):  # the flush returns after the watcher saw it
                    time.sleep(0.01)
                outcome = outcomes[-1]
                published = orjson.loads(outcome.recorded.value)
                if settled[0][1] != topics.model_deployed:
                    raise RuntimeError(f"the command was rejected: {published}")
                if published["metrics"]["gate"] != "passed":
                    raise RuntimeError(f"the gate did not compare: {published['metrics']}")
                timings: dict[str, Any] = dict(outcome.timings)
                timings["publish"] = publish_times[-1]
                timings["command_to_deployed"] = settled[0][0] - sent
                # The bare loop runs as many epochs as the pipeline did (early stopping included),
                # right after it, so both see the same machine load.
                epochs_run = published["metrics"]["epochs_run"]
                timings["epochs"] = epochs_run
                timings["bare_torch"] = bare_torch_loop(spec, split, hyper, epochs_run)
                timings["overhead"] = timings["command_to_deployed"] / timings["bare_torch"] - 1
                # What the pipeline adds around training, against the same bare loop (less noisy
                # than the difference of two training runs on a shared machine).
                timings["non_training"] = (
                    timings["command_to_deployed"] - timings["train"]
                ) / timings["bare_torch"]
                runs.append(timings)
                print(
                    f"  run {len(runs)}: pipeline train {timings['train']:.2f}s, "
                    f"gate {timings['gate']:.3f}s ({published['metrics']['gate_detail']}), "
                    f"command->deployed {timings['command_to_deployed']:.2f}s, "
                    f"bare {timings['bare_torch']:.2f}s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            stop.set()
            thread.join()
            stop_server(registry)
        return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def inference_latency(iterations: int = 3000, warm_up: int = 200) -> dict[str, float]:
    spec = ModelTypeSpec(
        name="calling_score", feature_count=23, target="outcome_score", loss=Loss.MSE
    )
    rows = np.random.default_rng(0).normal(size=(256, 23)).astype(np.float32)
    configure_torch(1)
    network: ScoringNetwork = build_network(spec, rows, seed=0)
    network.eval()
    from training.export import export_onnx

    session = session_for(export_onnx(network, spec))
    name = session.get_inputs()[0].name
    np.testing.assert_allclose(
        score_onnx(export_onnx(network, spec), rows), predict(network, rows), atol=1e-5
    )

    def measure(call: Any) -> list[float]:
        for i in range(warm_up):
            call(rows[i % 256 : i % 256 + 1])
        samples = []
        for i in range(iterations):
            row = rows[i % 256 : i % 256 + 1]
            started = time.perf_counter_ns()
            call(row)
            samples.append((time.perf_counter_ns() - started) / 1000.0)
        return samples

    def torch_call(row: np.ndarray) -> None:
        with torch.no_grad():
            network(torch.from_numpy(row))

    torch_us = measure(torch_call)
    ort_us = measure(lambda row: session.run(None, {name: row}))

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q))

    return {
        "torch_p50_us": statistics.median(torch_us),
        "torch_p99_us": pct(torch_us, 99),
        "ort_p50_us": statistics.median(ort_us),
        "ort_p99_us": pct(ort_us, 99),
    }


class BenchSettings(BaseSettings):
    """BENCH_LOG: the log level of this script (ERROR by default: the tables are the output)."""

    model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore")

    log: str = "ERROR"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--epochs", type=int, help="fixed epochs (default: the settings, early stopping on)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="commands per size; medians reported"
    )
    parser.add_argument(
        "--production-epochs", type=int, default=3, help="epochs of the production version"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 3 epochs, 1 command")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.epochs, args.repeats, args.production_epochs = [2_000], 3, 1, 1
    logging.basicConfig(level=BenchSettings().log, format="%(asctime)s %(name)s %(message)s")
    bootstrap = KafkaSettings().bootstrap_servers

    epochs = (
        f"{args.epochs} epochs" if args.epochs else "max 100 epochs, early stopping (patience 10)"
    )
    print(f"## training pipeline: {epochs}, batch 256, 1 torch thread, MLP 13,441 params")
    print()
    print(
        f"gate against a real registry (production: the same network after "
        f"{args.production_epochs} epochs); medians of {args.repeats} commands; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start"
    )
    print()
    print("| samples | epochs | read s | train s | gate s | export+validate s | store s | publish s | "
          "command->deployed s | bare torch s | overhead vs bare | non-training phases / bare |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.sizes:
        t = run_size(bootstrap, count, args.epochs, args.repeats, args.production_epochs)
        overhead = t["overhead"]
        print(
            f"| {count:,} | {t['epochs']:.0f} | {t['read']:.2f} | {t['train']:.2f} | {t['gate']:.3f} | "
            f"{t['export_validate']:.2f} | {t['store']:.3f} | {t['publish']:.3f} | "
            f"{t['command_to_deployed']:.2f} | {t['bare_torch']:.2f} | {overhead:+.0%} | "
            f"{t['non_training']:.0%} |",
            flush=True,
        )
    latency = inference_latency(300, 20) if args.quick else inference_latency()
    print()
    print("| single-row inference | p50 us | p99 us |")
    print("|---|---:|---:|")
    print(
        f"| torch eager (no_grad) | {latency['torch_p50_us']:.1f} | {latency['torch_p99_us']:.1f} |"
    )
    print(f"| onnxruntime (1 thread) | {latency['ort_p50_us']:.1f} | {latency['ort_p99_us']:.1f} |")
    print(
        f"| ratio torch/onnxruntime | {latency['torch_p50_us'] / latency['ort_p50_us']:.1f}x | "
        f"{latency['torch_p99_us'] / latency['ort_p99_us']:.1f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
