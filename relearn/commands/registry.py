"""`relearn registry`: the registry service (FastAPI under uvicorn) in the foreground."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry", help="the model registry service (HTTP API + Kafka consumers)"
    )
    parser.add_argument("--host", default=None, help="bind address (RELEARN_REGISTRY_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (RELEARN_REGISTRY_PORT)")
    parser.add_argument(
        "--migrate-only",
        action="store_true",
        help="bring the database schema to the newest revision (Alembic) and exit",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import logging
    import os
    import signal
    import threading

    import uvicorn

    logging.getLogger("alembic").setLevel(logging.WARNING)

    from registry.main import create_app
    from registry.settings import RegistrySettings

    settings = RegistrySettings()
    if args.migrate_only:  # e.g. a Kubernetes init container, before any instance starts
        from registry.store.sql import SqlRegistryStore

        SqlRegistryStore(settings.resolved_database_url())  # opening it migrates
        return 0
    host = args.host or settings.registry_host
    port = args.port or settings.registry_port

    failed = threading.Event()

    def stop_loudly() -> None:  # a consumer gave up: exit non-zero so a supervisor restarts us
        logging.getLogger("relearn.registry").critical("a registry consumer failed; stopping")
        failed.set()
        os.kill(os.getpid(), signal.SIGTERM)

    app = create_app(settings, on_consumer_failure=stop_loudly)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 1 if failed.is_set() else 0
