"""Runs a real Apache Kafka (KRaft, combined broker+controller) as plain JVM processes, no Docker.

Maven resolves `org.apache.kafka:kafka_2.13` and a log4j2 backend into a per-version cache; each
node gets its own directory with a `server.properties`, a formatted log dir, a pid file and a log.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.clients import broker_count

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
DEFAULT_HEAP = "512m"


class BrokerError(Exception):
    """The local broker could not be set up, started or stopped."""


class LocalBrokerSettings(BaseSettings):
    """RELEARN_CACHE_DIR (the jars) and RELEARN_KAFKA_HEAP; read when a broker is set up."""

    model_config = SettingsConfigDict(env_prefix="RELEARN_", extra="ignore", frozen=True)

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "relearn")
    kafka_heap: str = DEFAULT_HEAP


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    return LocalBrokerSettings().cache_dir / "kafka" / version


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>relearn</groupId><artifactId>kafka-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
"""


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """Resolve the broker's jars with Maven once; later calls return the cached folder."""
    target = cache_dir(version)
    libs = target / "libs"
    marker = target / ".complete"
    require_java()
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("mvn is not on PATH: install Maven (apt-get install maven)")
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
    partial = target / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(target / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BrokerError(f"Maven could not resolve Kafka {version}:\n{result.stdout[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    (target / "log4j2.xml").write_text(_LOG4J2)
    marker.write_text(version)
    return libs


def require_java() -> None:
    if shutil.which("java") is None:
        raise BrokerError(
            "java is not on PATH: install OpenJDK 17 (apt-get install openjdk-17-jre)"
        )


def default_heap() -> str:
    return LocalBrokerSettings().kafka_heap


@dataclass(frozen=True)
class ClusterLayout:
    """Where a local cluster lives and which ports it listens on."""

    base_dir: Path
    nodes: int = 1
    port: int = 9092
    controller_port: int | None = None

    @property
    def broker_ports(self) -> list[int]:
        return [self.port + i for i in range(self.nodes)]

    @property
    def controller_ports(self) -> list[int]:
        first = self.controller_port or self.port + 100
        return [first + i for i in range(self.nodes)]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.broker_ports)

    def node_dir(self, node_id: int) -> Path:
        return self.base_dir / f"node-{node_id}"

    def node_ids(self) -> list[int]:
        return list(range(1, self.nodes + 1))


def _server_properties(layout: ClusterLayout, node_id: int) -> str:
    index = node_id - 1
    voters = ",".join(
        f"{nid}@127.0.0.1:{layout.controller_ports[nid - 1]}" for nid in layout.node_ids()
    )
    replication = min(3, layout.nodes)
    min_isr = 2 if layout.nodes >= 3 else 1
    node_dir = layout.node_dir(node_id)
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{layout.broker_ports[index]},"
            f"CONTROLLER://127.0.0.1:{layout.controller_ports[index]}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{layout.broker_ports[index]}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={node_dir / 'data'}",
            f"num.partitions={4}",
            f"default.replication.factor={replication}",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=10",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            f"min.insync.replicas={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.dedupe.buffer.size=8388608",
            "num.network.threads=2",
            "num.io.threads=4",
            "log.segment.bytes=67108864",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port(count: int = 1) -> int:
    """A port p with p..p+count-1 (brokers) and p+100..p+100+count-1 (controllers) free right now."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 100 + count > 65535:
            continue
        candidates = [port + i for i in range(count)] + [port + 100 + i for i in range(count)]
        if not any(_port_in_use(p) for p in candidates):
            return port
    raise BrokerError("no free port range found")


def _java_command(libs: Path, heap: str, main: str, *args: str) -> list[str]:
    log4j = libs.parent / "log4j2.xml"
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _pid_of(node_dir: Path) -> int | None:
    pid_file = node_dir / "kafka.pid"
    if not pid_file.exists():
        return None
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_node(layout: ClusterLayout, node_id: int, libs: Path, heap: str | None = None) -> int:
    """Start one formatted node in the background; returns its pid."""
    node_dir = layout.node_dir(node_id)
    log_file = node_dir / "kafka.log"
    with open(log_file, "ab") as log_handle:
        process = subprocess.Popen(
            _java_command(
                libs, heap or default_heap(), "kafka.Kafka", str(node_dir / "server.properties")
            ),
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (node_dir / "kafka.pid").write_text(str(process.pid))
    return process.pid


def up(layout: ClusterLayout, timeout: float = 120.0, heap: str | None = None) -> str:
    """Format (once) and start every node; return the bootstrap servers once all are seen."""
    libs = ensure_jars()
    running = [nid for nid in layout.node_ids() if _pid_of(layout.node_dir(nid))]
    if running and broker_count(layout.bootstrap_servers) >= layout.nodes:
        return layout.bootstrap_servers
    for port in [*layout.broker_ports, *layout.controller_ports]:
        if _port_in_use(port) and not running:
            raise BrokerError(
                f"port {port} on 127.0.0.1 is taken by another process; stop it or pick "
                "another port (--port)"
            )
    cluster_file = layout.base_dir / "cluster.id"
    layout.base_dir.mkdir(parents=True, exist_ok=True)
    if not cluster_file.exists():
        cluster_file.write_text(_cluster_id())
    cluster_id = cluster_file.read_text().strip()
    for node_id in layout.node_ids():
        node_dir = layout.node_dir(node_id)
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "server.properties").write_text(_server_properties(layout, node_id))
        format_node(layout, node_id, cluster_id, libs)
        if node_id not in running:
            start_node(layout, node_id, libs, heap)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node_id in layout.node_ids():
            if _pid_of(layout.node_dir(node_id)) is None:
                log_file = layout.node_dir(node_id) / "kafka.log"
                down(layout)
                raise BrokerError(
                    f"Kafka node {node_id} exited during start-up; end of {log_file}:\n"
                    + _tail(log_file)
                )
        if broker_count(layout.bootstrap_servers, timeout=1.0) >= layout.nodes:
            return layout.bootstrap_servers
        time.sleep(0.3)
    down(layout)
    raise BrokerError(f"Kafka did not show {layout.nodes} broker(s) within {timeout:.0f} s")


def format_node(layout: ClusterLayout, node_id: int, cluster_id: str, libs: Path) -> None:
    """Write a node's KRaft metadata once; a node already formatted is left as it is."""
    node_dir = layout.node_dir(node_id)
    if (node_dir / "data" / "meta.properties").exists():
        return
    result = subprocess.run(
        _java_command(
            libs,
            "256m",
            "kafka.tools.StorageTool",
            "format",
            # One token: an id that starts with '-' would otherwise read as an option.
            f"--cluster-id={cluster_id}",
            "-c",
            str(node_dir / "server.properties"),
            "--ignore-formatted",
        ),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BrokerError(f"formatting node {node_id} failed:\n{result.stdout}{result.stderr}")


def _cluster_id() -> str:
    """A random Kafka cluster id; like Kafka's own Uuid, never one that starts with '-'."""
    import base64

    while True:
        encoded = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not encoded.startswith("-"):
            return encoded


def stop_node(layout: ClusterLayout, node_id: int, grace: float = 20.0, kill: bool = False) -> None:
    node_dir = layout.node_dir(node_id)
    pid = _pid_of(node_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    _await_exit(node_dir, pid, grace)


def _await_exit(node_dir: Path, pid: int, grace: float) -> None:
    """Wait up to `grace` for a signalled node to exit, then SIGKILL it."""
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
        _reap(pid)
    if _alive(pid):
        log.warning("%s did not stop within %.0f s of its signal; SIGKILLed", node_dir.name, grace)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
            _reap(pid)
    (node_dir / "kafka.pid").unlink(missing_ok=True)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def down(layout: ClusterLayout, grace: float = 20.0) -> list[int]:
    """Stop every node of the layout (SIGTERM, SIGKILL after `grace`); returns the stopped ids.

    Every node is signalled before any is waited for: stopped one by one, the last node of a
    three-node cluster has lost its controller quorum and cannot finish its controlled shutdown,
    so it sat out the whole grace period. Signalled together, each broker's controlled shutdown
    completes while the quorum is still up."""
    running = {nid: pid for nid in layout.node_ids() if (pid := _pid_of(layout.node_dir(nid)))}
    for pid in running.values():
        os.kill(pid, signal.SIGTERM)
    for node_id, pid in running.items():
        _await_exit(layout.node_dir(node_id), pid, grace)
    return list(running)


def status(layout: ClusterLayout) -> dict[int, int | None]:
    """Node id -> pid of the running JVM, or None."""
    return {nid: _pid_of(layout.node_dir(nid)) for nid in layout.node_ids()}


def read_layout(base_dir: Path) -> ClusterLayout | None:
    """The layout `up` recorded in base_dir, so `down` and `status` need no flags."""
    record = base_dir / "layout"
    if not record.exists():
        return None
    nodes, port, controller = (int(x) for x in record.read_text().split())
    return ClusterLayout(base_dir, nodes, port, controller)


def write_layout(layout: ClusterLayout) -> None:
    layout.base_dir.mkdir(parents=True, exist_ok=True)
    (layout.base_dir / "layout").write_text(
        f"{layout.nodes} {layout.port} {layout.controller_ports[0]}\n"
    )
