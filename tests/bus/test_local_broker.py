"""`relearn kafka up|status|down` runs a real KRaft cluster that a client we did not write can see."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bus.local_broker import (
    ClusterLayout,
    _cluster_id,
    _server_properties,
    ensure_jars,
    format_node,
    free_port,
)

RELEARN = [sys.executable, "-m", "relearn.cli"]


def relearn(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*RELEARN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def kcat_brokers(bootstrap: str) -> list[str]:
    listing = subprocess.run(
        ["kcat", "-b", bootstrap, "-L", "-m", "10"], capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0, listing.stderr
    return [
        line.strip() for line in listing.stdout.splitlines() if line.strip().startswith("broker ")
    ]


def java_pids_using(directory: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"java.*{directory}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.parametrize("nodes", [1, 3])
def test_up_is_seen_by_kcat_and_down_leaves_no_jvm(tmp_path: Path, nodes: int) -> None:
    assert shutil.which("kcat"), "kcat is installed by scripts/system-deps.sh"
    port = free_port(count=nodes)
    up = relearn("kafka", "up", "--nodes", str(nodes), "--port", str(port), "--dir", str(tmp_path))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        bootstrap = up.stdout.strip().splitlines()[-1]
        assert bootstrap == ",".join(f"127.0.0.1:{port + i}" for i in range(nodes))
        assert len(kcat_brokers(f"127.0.0.1:{port}")) == nodes
        status = relearn("kafka", "status", "--dir", str(tmp_path))
        assert status.returncode == 0 and f"{nodes} broker(s) answer" in status.stdout
        again = relearn(
            "kafka", "up", "--nodes", str(nodes), "--port", str(port), "--dir", str(tmp_path)
        )
        assert again.returncode == 0 and again.stdout.strip() == bootstrap
    finally:
        down = relearn("kafka", "down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    # every node finished its controlled shutdown (a three-node cluster stopped one node at a
    # time left the last without a quorum, and it was SIGKILLed after 20 s)
    assert "SIGKILLed" not in down.stderr, down.stderr
    assert java_pids_using(tmp_path) == []
    assert relearn("kafka", "status", "--dir", str(tmp_path)).returncode == 1


def test_a_new_cluster_id_never_starts_with_a_dash() -> None:
    # One id in 64 would; kafka-storage reads such an id as an option (CI failed on it once).
    assert not any(_cluster_id().startswith("-") for _ in range(2_000))


def test_a_stored_cluster_id_that_starts_with_a_dash_still_formats(tmp_path: Path) -> None:
    layout = ClusterLayout(base_dir=tmp_path, nodes=1, port=free_port())
    node_dir = layout.node_dir(1)
    node_dir.mkdir(parents=True)
    (node_dir / "server.properties").write_text(_server_properties(layout, 1))
    dashed = "-" + _cluster_id()[1:]
    format_node(layout, 1, dashed, ensure_jars())
    meta = (node_dir / "data" / "meta.properties").read_text()
    assert f"cluster.id={dashed}" in meta


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = relearn("kafka", "up", "--port", str(port), "--dir", str(tmp_path))
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "taken" in result.stderr
    assert java_pids_using(tmp_path) == []


def test_a_broker_that_dies_during_start_shows_its_log(tmp_path: Path) -> None:
    result = relearn(
        "kafka",
        "up",
        "--port",
        str(free_port()),
        "--dir",
        str(tmp_path),
        env={"RELEARN_KAFKA_HEAP": "1k"},
    )
    assert result.returncode == 1
    assert "exited during start-up" in result.stderr
    assert "heap" in result.stderr.lower()
    assert java_pids_using(tmp_path) == []


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    result = relearn(
        "kafka",
        "up",
        "--port",
        str(free_port()),
        "--dir",
        str(tmp_path),
        env={"PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 1
    assert "java is not on PATH" in result.stderr
