"""Entry point of the `relearn` console script: one subcommand module per area under commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bus.logs import configure_logging
from bus.settings import LogSettings

# Each module defines register(subparsers); its handlers set args.handler.
COMMAND_MODULES = (
    "relearn.commands.kafka",
    "relearn.commands.topics",
    "relearn.commands.streams",  # relearn streams
    "relearn.commands.trainer",  # relearn trainer
    "relearn.commands.train",  # relearn train (the manual path)
    "relearn.commands.registry",  # relearn registry
    "relearn.commands.models",  # relearn models list|show|promote|rollback|weights
    "relearn.commands.simulate",  # relearn simulate
    "relearn.commands.up",  # relearn up
    "relearn.commands.demo",  # relearn demo (what make run runs)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relearn", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The subcommand names the service in JSON log lines (RELEARN_LOG_FORMAT=json).
    configure_logging(args.log_level, args.command, LogSettings().log_format)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is one of ours
        if not _is_ours(exc):
            raise  # a bug: its traceback is what anyone fixing it needs
        logging.getLogger("relearn").debug("failed", exc_info=True)
        print(f"relearn: error: {exc}", file=sys.stderr)
        return 1


def _is_ours(exc: Exception) -> bool:
    """One of relearn's own errors (each package's root), an invalid setting, or the machine
    saying no (a file, a port, a connection): a message for the user, not a bug."""
    from pydantic import ValidationError

    from bus.local_broker import BrokerError
    from contracts.validation import ContractError
    from registry.errors import RegistryError
    from relearn.errors import RelearnError
    from simulator.runner import SimulationError
    from streams.processing import StreamsError
    from training.errors import TrainingError

    ours = (
        RelearnError,
        ContractError,
        BrokerError,
        StreamsError,
        TrainingError,
        RegistryError,
        SimulationError,
        OSError,
    )
    if isinstance(exc, ValidationError):
        return exc.title.endswith("Settings")  # a RELEARN_ variable, not a bug's bad model
    return isinstance(exc, ours)


if __name__ == "__main__":
    sys.exit(main())
