"""`relearn registry`: the registry service (FastAPI under uvicorn) in the foreground."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry", help="the model registry service (HTTP API + Kafka consumers)"
    )
    parser.add_argument("--host", default=None, help="bind address (RELEARN_REGISTRY_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (RELEARN_REGISTRY_PORT)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    logging.getLogger("alembic").setLevel(logging.WARNING)

    from registry.main import create_app
    from registry.settings import RegistrySettings

    settings = RegistrySettings()
    host = args.host or settings.registry_host
    port = args.port or settings.registry_port
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0
