"""`relearn streams`: one streams worker (the faust app) in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    streams = subparsers.add_parser(
        "streams", help="run one streams worker (validate, de-duplicate, count, trigger, A/B)"
    )
    streams.add_argument("--web-port", type=int, help="faust web port (RELEARN_STREAMS_WEB_PORT)")
    streams.add_argument(
        "--data-dir", type=Path, help="this worker's RocksDB directory (RELEARN_STREAMS_DATA_DIR)"
    )
    streams.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from faust import Worker

    from streams.factory import create_app
    from streams.settings import StreamsSettings

    overrides: dict[str, object] = {}
    if args.web_port is not None:
        overrides["streams_web_port"] = args.web_port
    if args.data_dir is not None:
        overrides["streams_data_dir"] = args.data_dir
    settings = StreamsSettings(**overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    worker = Worker(app, loglevel=args.log_level.lower(), redirect_stdouts=False)
    # The client libraries log per message at debug level; building those records costs ~8%
    # of a worker's CPU even when no handler prints them.
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
    worker.execute_from_commandline()  # returns only by raising SystemExit
    return 0
