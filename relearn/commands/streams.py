"""`relearn streams`: one streams worker in the foreground, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    streams = subparsers.add_parser(
        "streams", help="run one streams worker (validate, de-duplicate, count, trigger, A/B)"
    )
    streams.add_argument("--web-port", type=int, help="web views port (RELEARN_STREAMS_WEB_PORT)")
    streams.add_argument(
        "--data-dir", type=Path, help="this worker's RocksDB directory (RELEARN_STREAMS_DATA_DIR)"
    )
    streams.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from bus.web import WebServer
    from streams.settings import StreamsSettings
    from streams.web import create_app
    from streams.worker import Worker

    overrides: dict[str, object] = {}
    if args.web_port is not None:
        overrides["streams_web_port"] = args.web_port
    if args.data_dir is not None:
        overrides["streams_data_dir"] = args.data_dir
    settings = StreamsSettings(**overrides)  # type: ignore[arg-type]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = Worker(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch, committing, leaving the group", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app = create_app(worker, worker.metrics.registry if worker.metrics else None)
    server = WebServer(
        app,
        settings.streams_web_host,
        settings.streams_web_port,
        "streams",
        "views, /metrics /livez /readyz /docs",
    ).start()
    try:
        worker.run()
    finally:
        server.stop()
    # A fatal client error is a failure: a supervisor restarts the worker, which replays.
    return 1 if worker.fatal_error else 0
