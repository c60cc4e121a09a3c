"""Benchmark: command-to-deployed time of the trainer by phase vs a bare torch loop; ORT vs torch latency.

Run (a broker must answer at KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092):
    .venv/bin/python bench/training_pipeline.py [--sizes 10000 100000] [--epochs 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from confluent_kafka import OFFSET_END, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.admin import create_topics  # noqa: E402
from bus.clients import make_consumer, make_producer  # noqa: E402
from contracts.events import RetrainReason, RetrainRequested, to_json  # noqa: E402
from contracts.model_types import Loss, ModelTypeSpec  # noqa: E402
from contracts.topics import Topics  # noqa: E402
from training.dataset import Split, split_dataset  # noqa: E402
from training.export import score_onnx, session_for  # noqa: E402
from training.fit import batch_loss  # noqa: E402
from training.hyperparameters import Hyperparameters  # noqa: E402
from training.network import ScoringNetwork, build_network, configure_torch, predict  # noqa: E402
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


def wait_for_one(bootstrap: str, topic: str, timeout: float = 900.0) -> float:
    consumer = make_consumer(
        bootstrap, f"bench-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                return time.perf_counter()
        raise TimeoutError(f"nothing on {topic}")
    finally:
        consumer.close()


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


def run_size(bootstrap: str, count: int, epochs: int | None, repeats: int) -> dict[str, Any]:
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}-")
    create_topics(bootstrap, topics, partitions=4, replication=1)
    produce_samples(bootstrap, topics.training_samples, count)
    with tempfile.TemporaryDirectory() as state:
        settings = TrainerSettings(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            topic_prefix=topics.prefix,
            state_dir=Path(state),
            registry_url="http://127.0.0.1:1",
            # no registry here: the gate's deploy policy keeps every run to a deployment
            gate_unavailable_policy="deploy",
            gate_attempts=1,
            trainer_group_id=f"bench-{uuid.uuid4().hex[:8]}",
            **({"training_max_epochs": epochs, "training_patience": epochs} if epochs else {}),
        )
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
        spec = worker.pipeline.spec_for(MODEL_TYPE)
        hyper = settings.hyperparameters()
        split: Split | None = None
        runs: list[dict[str, float]] = []
        try:
            for _ in range(repeats):
                deployed: list[float] = []
                watcher = threading.Thread(
                    target=lambda out=deployed: out.append(
                        wait_for_one(bootstrap, topics.model_deployed)
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
                timings = dict(outcome.timings)
                timings["publish"] = publish_times[-1]
                timings["command_to_deployed"] = deployed[0] - sent
                if split is None:
                    read = KafkaSampleReader(bootstrap, topics.training_samples).read_window(
                        spec, retrain.requested_at.replace(year=retrain.requested_at.year - 1)
                    )
                    split = split_dataset(read.dataset, hyper.seed)
                # The bare loop runs as many epochs as the pipeline did (early stopping included),
                # right after it, so both see the same machine load.
                epochs_run = orjson.loads(outcome.recorded.value)["metrics"]["epochs_run"]
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
                    f"command->deployed {timings['command_to_deployed']:.2f}s, "
                    f"bare {timings['bare_torch']:.2f}s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            stop.set()
            thread.join()
        return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def inference_latency(iterations: int = 3000) -> dict[str, float]:
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
        for i in range(200):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--epochs", type=int, help="fixed epochs (default: the settings, early stopping on)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="commands per size; medians reported"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("BENCH_LOG", "ERROR"), format="%(asctime)s %(name)s %(message)s"
    )
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

    epochs = (
        f"{args.epochs} epochs" if args.epochs else "max 100 epochs, early stopping (patience 10)"
    )
    print(f"## training pipeline: {epochs}, batch 256, 1 torch thread, MLP 13,441 params")
    print()
    print("| samples | epochs | read s | train s | gate s | export+validate s | store s | publish s | "
          "command->deployed s | bare torch s | overhead vs bare | non-training phases / bare |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.sizes:
        t = run_size(bootstrap, count, args.epochs, args.repeats)
        overhead = t["overhead"]
        print(
            f"| {count:,} | {t['epochs']:.0f} | {t['read']:.2f} | {t['train']:.2f} | {t['gate']:.3f} | "
            f"{t['export_validate']:.2f} | {t['store']:.3f} | {t['publish']:.3f} | "
            f"{t['command_to_deployed']:.2f} | {t['bare_torch']:.2f} | {overhead:+.0%} | "
            f"{t['non_training']:.0%} |",
            flush=True,
        )
    latency = inference_latency()
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
