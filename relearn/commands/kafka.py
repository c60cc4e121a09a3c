"""`relearn kafka up|down|status|fetch`: the local Apache Kafka without Docker."""

from __future__ import annotations

import argparse
from pathlib import Path

from bus import local_broker
from bus.clients import broker_count

DEFAULT_DIR = Path(".relearn") / "kafka"


def register(subparsers: argparse._SubParsersAction) -> None:
    kafka = subparsers.add_parser("kafka", help="local Apache Kafka (KRaft) as JVM processes")
    actions = kafka.add_subparsers(dest="action", required=True)

    up = actions.add_parser("up", help="start the broker(s); returns once they answer")
    up.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    up.add_argument("--port", type=int, default=9092, help="first broker port (default 9092)")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    up.add_argument("--timeout", type=float, default=120.0)
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", help="stop the broker(s): SIGTERM, then SIGKILL")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    down.set_defaults(handler=_down)

    status = actions.add_parser("status", help="which nodes run and whether the cluster answers")
    status.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    status.set_defaults(handler=_status)

    fetch = actions.add_parser("fetch", help="resolve the Kafka jars into the cache")
    fetch.set_defaults(handler=_fetch)


def _up(args: argparse.Namespace) -> int:
    existing = local_broker.read_layout(args.dir)
    if (
        existing
        and any(local_broker.status(existing).values())
        and (existing.nodes != args.nodes or existing.port != args.port)
    ):
        print(
            f"relearn: a {existing.nodes}-node cluster already runs in {args.dir}; "
            "`relearn kafka down` first"
        )
        return 1
    layout = local_broker.ClusterLayout(args.dir.resolve(), args.nodes, args.port)
    local_broker.write_layout(layout)
    print(local_broker.up(layout, timeout=args.timeout))
    return 0


def _down(args: argparse.Namespace) -> int:
    layout = local_broker.read_layout(args.dir)
    if layout is None:
        print("no local Kafka recorded in", args.dir)
        return 0
    stopped = local_broker.down(layout)
    print(f"stopped node(s) {stopped}" if stopped else "nothing was running")
    return 0


def _status(args: argparse.Namespace) -> int:
    layout = local_broker.read_layout(args.dir)
    if layout is None:
        print("no local Kafka recorded in", args.dir)
        return 1
    pids = local_broker.status(layout)
    for node_id, pid in pids.items():
        print(f"node {node_id}: {'running, pid ' + str(pid) if pid else 'stopped'}")
    seen = broker_count(layout.bootstrap_servers)
    print(f"bootstrap servers {layout.bootstrap_servers}: {seen} broker(s) answer")
    return 0 if seen == layout.nodes else 1


def _fetch(args: argparse.Namespace) -> int:
    print(local_broker.ensure_jars())
    return 0
