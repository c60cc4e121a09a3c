"""`relearn topics create`: every topic of the contract, idempotently."""

from __future__ import annotations

import argparse

from bus.admin import create_topics
from bus.settings import KafkaSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    topics = subparsers.add_parser("topics", help="the contract's topics")
    actions = topics.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create every topic (idempotent)")
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    settings = KafkaSettings()
    result = create_topics(
        settings.bootstrap_servers,
        settings.topics,
        settings.topic_partitions,
        settings.topic_replication,
    )
    for name, state in sorted(result.items()):
        print(f"{name:40} {state}")
    return 0
