"""Benchmark: registry `/route` requests/s and p99 (one uvicorn worker, load from a second
process over loopback), and `ModelRouter.predict` overhead over a bare onnxruntime call.

    .venv/bin/python bench/registry_route.py [--duration 8] [--connections 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MT = "calling_score"
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


# -- load generator (runs in its own process) ------------------------------------------------
async def _connection(
    port: int,
    stop_at: float,
    budget: list[int],
    latencies: list[float],
    errors: list[int],
    offset: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            subject = f"subject-{offset}-{budget[0]}"
            request = (
                f"GET /models/{MT}/route?subject_id={subject} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _LENGTH.search(head)
            await reader.readexactly(int(match.group(1)) if match else 0)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
    finally:
        writer.close()


async def _generate(port: int, connections: int, duration: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    started = time.perf_counter()
    stop_at = started + duration
    await asyncio.gather(
        *(_connection(port, stop_at, budget, latencies, errors, i) for i in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def load_from_second_process(
    port: int, connections: int, duration: float, max_requests: int
) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--generate",
            str(port),
            "--connections",
            str(connections),
            "--duration",
            str(duration),
            "--max-requests",
            str(max_requests),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    return json.loads(output)


# -- the registry under test -------------------------------------------------------------------
def mlp_onnx(seed: int, features: int = 23, hidden: tuple[int, ...] = (128, 64, 32)) -> bytes:
    """The built-in architecture (23-128-64-32-1, ReLU; 13,441 parameters) with random weights."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    sizes = [features, *hidden, 1]
    nodes, inits, current = [], [], "features"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        inits.append(
            helper.make_tensor(
                f"W{i}", TensorProto.FLOAT, [a, b], rng.normal(0, a**-0.5, a * b).astype(np.float32)
            )
        )
        inits.append(helper.make_tensor(f"b{i}", TensorProto.FLOAT, [b], np.zeros(b, np.float32)))
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"b{i}"], [f"h{i}"]))
        current = f"h{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Identity", [current], ["score"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def seed_registry(state_dir: Path, artifact_dir: Path) -> list[Path]:
    """Two versions (production 0.9, candidate 0.1) in the SQLite database the server will open."""
    import hashlib

    from contracts.events import ModelDeployed, TrainingMetrics
    from contracts.model_types import ModelTypeCatalog
    from registry.artifacts import ArtifactStore
    from registry.service import RegistryService
    from registry.store import open_store

    store = open_store(f"sqlite:///{state_dir / 'registry.db'}")
    service = RegistryService(store, ArtifactStore(artifact_dir), ModelTypeCatalog())
    paths = []
    for seed in (0, 1):
        data = mlp_onnx(seed)
        sha = hashlib.sha256(data).hexdigest()
        path = artifact_dir / MT / f"{sha}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
        service.register_deployment(
            ModelDeployed(
                model_type=MT,
                artifact_uri=path.as_uri(),
                sha256=sha,
                size_bytes=len(data),
                onnx_opset=17,
                input_name="features",
                input_shape=[None, 23],
                output_name="score",
                output_shape=[None, 1],
                metrics=TrainingMetrics(
                    train_loss=0,
                    val_loss=0,
                    test_loss=0,
                    parameters=13441,
                    train_samples=0,
                    val_samples=0,
                    test_samples=0,
                ),
            )
        )
    store.close()
    return paths


def start_server(
    state_dir: Path, artifact_dir: Path, port: int, cache_seconds: float
) -> subprocess.Popen:
    env = {
        **os.environ,
        "RELEARN_STATE_DIR": str(state_dir),
        "RELEARN_ARTIFACT_DIR": str(artifact_dir),
        "RELEARN_API_TOKEN": "bench",
        "RELEARN_REGISTRY_KAFKA_ENABLED": "false",
        "RELEARN_REGISTRY_ROUTE_CACHE_SECONDS": str(cache_seconds),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relearn.cli",
            "--log-level",
            "WARNING",
            "registry",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("registry did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def router_overhead(url: str, model_path: Path, calls: int, rounds: int) -> dict:
    """Per-call microseconds: bare session.run vs ModelRouter.predict (same model, 1 thread)."""
    import onnxruntime as ort

    from registry.client import ModelRouter

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    bare = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    features = np.linspace(-1, 1, 23).tolist()
    subjects = [f"subject-{i}" for i in range(calls)]
    bare_us, router_us = [], []
    with ModelRouter(
        url, cache_dir=model_path.parent.parent / "cache", refresh_interval=3600
    ) as router:
        for subject in subjects[:200]:  # warm: both versions loaded
            router.predict(MT, subject, features)
        for _ in range(rounds):
            started = time.perf_counter()
            for _subject in subjects:
                row = np.asarray(features, dtype=np.float32).reshape(1, -1)
                float(bare.run(None, {"features": row})[0][0, 0])
            bare_us.append((time.perf_counter() - started) / calls * 1e6)
            started = time.perf_counter()
            for subject in subjects:
                router.predict(MT, subject, features)
            router_us.append((time.perf_counter() - started) / calls * 1e6)
    bare_median, router_median = statistics.median(bare_us), statistics.median(router_us)
    # Paired rounds (bare, then router, back to back) cancel most of a shared machine's drift.
    pairs = list(zip(router_us, bare_us, strict=True))
    return {
        "bare_us": bare_median,
        "router_us": router_median,
        "overhead_us": statistics.median(r - b for r, b in pairs),
        "ratio": statistics.median(r / b for r, b in pairs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    if args.generate:
        result = asyncio.run(
            _generate(args.generate, args.connections, args.duration, args.max_requests)
        )
        print(json.dumps(result))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="relearn-bench-") as tmp:
        state_dir, artifact_dir = Path(tmp) / "state", Path(tmp) / "artifacts"
        state_dir.mkdir()
        paths = seed_registry(state_dir, artifact_dir)
        for cache_seconds in (1.0, 0.0):
            port = free_port()
            server = start_server(state_dir, artifact_dir, port, cache_seconds)
            try:
                load_from_second_process(port, args.connections, 1.5, 5_000)  # warm-up
                runs = [
                    load_from_second_process(
                        port, args.connections, args.duration, args.max_requests
                    )
                    for _ in range(args.repeats)
                ]
                if cache_seconds:
                    overhead = router_overhead(
                        f"http://127.0.0.1:{port}", paths[0], args.calls, args.rounds
                    )
            finally:
                stop_server(server)
            errors = sum(r["errors"] for r in runs)
            rows.append(
                (
                    cache_seconds,
                    statistics.median(r["rps"] for r in runs),
                    statistics.median(r["p50_ms"] for r in runs),
                    statistics.median(r["p99_ms"] for r in runs),
                    sum(r["requests"] for r in runs),
                    errors,
                )
            )
    print(
        f"/route, one uvicorn worker, {args.connections} keep-alive connections from a second "
        f"process, {args.duration:g} s x {args.repeats} (medians)"
    )
    print("| route cache | requests/s | p50 ms | p99 ms | requests | errors |")
    print("|---|---|---|---|---|---|")
    for cache_seconds, rps, p50, p99, total, errors in rows:
        label = f"{cache_seconds:g} s (default)" if cache_seconds else "off (DB every request)"
        print(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {total:,} | {errors} |")
    print()
    print(
        f"ModelRouter.predict vs bare onnxruntime (23-128-64-32-1 MLP, 1 thread, "
        f"{args.calls:,} calls x {args.rounds} paired rounds, medians)"
    )
    print("| bare session.run | ModelRouter.predict | overhead (paired) | ratio (paired) |")
    print("|---|---|---|---|")
    print(
        f"| {overhead['bare_us']:.1f} us | {overhead['router_us']:.1f} us | "
        f"{overhead['overhead_us']:.1f} us | {overhead['ratio']:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
