"""The chaos suite's harness: sizes, real registry/trainer processes, a dedicated broker, figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from bus import local_broker
from streams.processing import SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER
from tests.streams.harness import REPO, get_json, read_topic, wait_until

# CI runs reduced sizes; `make chaos` sets RELEARN_CHAOS_SIZE=full for the sizes.
FULL = os.environ.get("RELEARN_CHAOS_SIZE", "ci").lower() == "full"
SIZE_NAME = "full" if FULL else "ci"


def size(ci: int | float, full: int | float) -> int | float:
    """The CI figure, or the full one under RELEARN_CHAOS_SIZE=full."""
    return full if FULL else ci


@dataclass
class ScenarioFigures:
    """One RELIABILITY.md row's figures (the scenario's name and size are on its marker).

    `lost` and `duplicated` are counted by id against what the scenario's own producer sent;
    None ("n/a") where the output checked has no ids to compare.
    """

    events: int
    faults: str
    lost: int | None
    duplicated: int | None
    recovery_s: float | None = None
    notes: str = ""
    seconds: float = 0.0


class ServiceProcess:
    """One `relearn <service>` subprocess in its own session (signals reach it alone)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relearn.cli", "--log-level", "INFO", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def kill(self) -> None:
        if self.alive:
            self.signal(signal.SIGKILL)
            assert self.process is not None
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Registry(ServiceProcess):
    """`relearn registry` on its own port, SQLite and artifact dir."""

    TOKEN = "chaos-token"

    def __init__(
        self, bootstrap: str, prefix: str, port: int, state_dir: Path, **settings: str
    ) -> None:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RELEARN_TOPIC_PREFIX": prefix,
            "RELEARN_STATE_DIR": str(state_dir),
            "RELEARN_ARTIFACT_DIR": str(state_dir / "artifacts"),
            "RELEARN_API_TOKEN": self.TOKEN,
            "RELEARN_REGISTRY_SESSION_TIMEOUT_MS": "6000",
            **settings,
        }
        self.port = port
        self.state_dir = state_dir
        super().__init__(
            "registry",
            ["registry", "--port", str(port)],
            env,
            state_dir.with_suffix(".registry.log"),
        )

    @classmethod
    def for_scenario(cls, bootstrap: str, prefix: str, tmp_path: Path, **settings: str) -> Registry:
        """A registry of its own for one scenario: a free port, `tmp_path/registry`, a fresh
        consumer group."""
        return cls(
            bootstrap,
            prefix,
            local_broker.free_port(),
            tmp_path / "registry",
            RELEARN_REGISTRY_CONSUMER_GROUP=f"chaos-{uuid.uuid4().hex[:8]}",
            **settings,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(
            lambda: get_json(f"{self.url}/healthz") is not None,
            timeout,
            f"registry did not answer; see {self.log_path}",
        )


class Trainer(ServiceProcess):
    """`relearn trainer` with quick hyperparameters (the chaos is in the process, not the model)."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        state_dir: Path,
        group_id: str,
        registry_url: str,
        **settings: str,
    ) -> None:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RELEARN_TOPIC_PREFIX": prefix,
            "RELEARN_STATE_DIR": str(state_dir),
            "RELEARN_ARTIFACT_DIR": str(state_dir / "artifacts"),
            "RELEARN_FAULTS_DIR": str(state_dir / "faults"),
            "RELEARN_REGISTRY_URL": registry_url,
            "RELEARN_REGISTRY_TIMEOUT": "2",
            "RELEARN_TRAINER_GROUP_ID": group_id,
            "RELEARN_TRAINING_MIN_SAMPLES": "100",
            "RELEARN_TRAINING_MAX_EPOCHS": "4",
            "RELEARN_TRAINING_PATIENCE": "2",
            "RELEARN_TRAINING_BATCH_SIZE": "64",
            # its own /metrics port: two trainers run at once in some scenarios
            "RELEARN_TRAINER_WEB_PORT": str(local_broker.free_port()),
            **settings,
        }
        self.state_dir = state_dir
        super().__init__("trainer", ["trainer"], env, state_dir.with_suffix(".trainer.log"))


def dedicated_cluster(base_dir: Path, nodes: int) -> local_broker.ClusterLayout:
    """A cluster of this test's own on free ports (never the session broker)."""
    port = local_broker.free_port(nodes)
    return local_broker.ClusterLayout(base_dir, nodes, port)


def restart_node(layout: local_broker.ClusterLayout, node_id: int) -> None:
    local_broker.start_node(layout, node_id, local_broker.ensure_jars())


def elapsed_since(started: float) -> float:
    return round(time.monotonic() - started, 2)


@dataclass(frozen=True)
class ForwardedIds:
    """training-samples compared by event id with the ids the scenario's producer sent."""

    lost: int  # valid ids sent that streams never forwarded
    duplicated: int  # ids forwarded from two different source records: a repeat that got through
    resent: int  # records re-sent from the same source record (at least once, counted once)
    unexpected: int  # ids forwarded that the producer never sent as valid


def forwarded_ids(bootstrap: str, topic: str, valid_ids: set[str]) -> ForwardedIds:
    sources: dict[str, set[tuple[bytes, bytes]]] = {}
    records = 0
    for message in read_topic(bootstrap, topic):
        headers = dict(message.headers() or [])
        if SOURCE_OFFSET_HEADER not in headers:
            continue  # not streams' own record (poison written straight to the topic)
        try:
            event_id = orjson.loads(message.value())["event_id"]
        except (ValueError, KeyError, TypeError):
            continue
        records += 1
        where = (headers[SOURCE_PARTITION_HEADER], headers[SOURCE_OFFSET_HEADER])
        sources.setdefault(event_id, set()).add(where)
    return ForwardedIds(
        lost=len(valid_ids - set(sources)),
        duplicated=sum(1 for found in sources.values() if len(found) > 1),
        resent=records - sum(len(found) for found in sources.values()),
        unexpected=len(set(sources) - valid_ids),
    )
