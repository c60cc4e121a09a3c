"""Registry fixtures: a real PostgreSQL server for the session, stores per test, ONNX artifacts."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

from contracts.events import ModelDeployed, TrainingMetrics
from registry.main import create_app
from registry.service import RegistryService
from registry.settings import RegistrySettings
from registry.store import RegistryStore, open_store
from tests.conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FEATURES = 23
API_TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session (RELEARN_TEST_POSTGRES_URL, else a local initdb)."""
    configured = os.environ.get("RELEARN_TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    if not (PG_BIN / "initdb").exists():
        message = f"no PostgreSQL server binaries at {PG_BIN}"
        # `make test` installs it (scripts/system-deps.sh): missing means set-up is broken.
        pytest.fail(message, pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="relearn-pg-"))
    data = base / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    try:
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL could not start: {exc} {detail.decode()[-500:]}", pytrace=False)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def fresh_postgres_database(server: str) -> str:
    import psycopg

    name = f"reg_{uuid.uuid4().hex[:12]}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests, once per store: SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_server"))


def kafkaless_settings(tmp_path: Path, artifact_dir: Path, **overrides: object) -> RegistrySettings:
    """The registry's settings with Kafka off: SQLite under `tmp_path`, API_TOKEN, no route
    cache; `overrides` are RegistrySettings fields."""
    fields: dict[str, object] = dict(
        state_dir=tmp_path,
        artifact_dir=artifact_dir,
        api_token=API_TOKEN,
        registry_kafka_enabled=False,
        registry_route_cache_seconds=0,
    )
    fields.update(overrides)
    return RegistrySettings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def client(
    request: pytest.FixtureRequest, tmp_path: Path, artifact_dir: Path
) -> Iterator[TestClient]:
    """The app with Kafka off on SQLite, or on PostgreSQL when parametrized indirectly with
    "postgresql"."""
    overrides: dict[str, object] = {}
    if getattr(request, "param", "sqlite") == "postgresql":
        overrides["database_url"] = fresh_postgres_database(
            request.getfixturevalue("postgres_server")
        )
    with TestClient(create_app(kafkaless_settings(tmp_path, artifact_dir, **overrides))) as app:
        yield app


def service_of(client: TestClient) -> RegistryService:
    return client.app.state.service  # type: ignore[attr-defined]


@pytest.fixture
def store(database_url: str) -> Iterator[RegistryStore]:
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()


def onnx_model_bytes(seed: int = 0, features: int = FEATURES) -> bytes:
    """A tiny real ONNX model: sigmoid(x @ W + b), input `features` [N, 23], output `score`."""
    rng = np.random.default_rng(seed)
    weight = helper.make_tensor(
        "W",
        TensorProto.FLOAT,
        [features, 1],
        rng.normal(0, 0.3, features).astype(np.float32).tolist(),
    )
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [float(rng.normal())])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["z0"]),
            helper.make_node("Add", ["z0", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["score"]),
        ],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


DeploymentFactory = Callable[..., ModelDeployed]


def make_deployment(
    artifact_dir: Path, model_type: str = "calling_score", seed: int = 0, **overrides: object
) -> ModelDeployed:
    """A model-deployed event for a real artifact written under `artifact_dir`."""
    data = onnx_model_bytes(seed)
    sha = hashlib.sha256(data).hexdigest()
    path = artifact_dir / model_type / f"{sha}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    fields: dict[str, object] = dict(
        model_type=model_type,
        artifact_uri=path.as_uri(),
        sha256=sha,
        size_bytes=len(data),
        onnx_opset=17,
        input_name="features",
        input_shape=[None, FEATURES],
        output_name="score",
        output_shape=[None, 1],
        metrics=TrainingMetrics(
            train_loss=0.02,
            val_loss=0.03,
            test_loss=0.025,
            early_stopping_epoch=4,
            parameters=24,
            train_samples=80,
            val_samples=10,
            test_samples=10,
        ),
        baseline_metrics={"test_loss": 0.026},
    )
    fields.update(overrides)
    return ModelDeployed(**fields)  # type: ignore[arg-type]


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts"
    path.mkdir()
    return path


@pytest.fixture
def deployment(artifact_dir: Path) -> DeploymentFactory:
    return lambda **kw: make_deployment(artifact_dir, **kw)


def wait_for(
    condition: Callable[[], object], timeout: float = 30.0, what: str = "", interval: float = 0.1
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
