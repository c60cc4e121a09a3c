"""`relearn demo`: what `make run` runs - the whole loop once, as a live timeline."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the whole loop once on the local stack")
    demo.add_argument("--rate", type=float, default=250.0, help="simulated events per second")
    demo.add_argument("--run-dir", type=Path, default=Path(".relearn") / "runs")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    import logging
    import signal

    from rich.console import Console

    from relearn.demo import DemoConfig, Story

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the story's cleanup: services, Kafka

    signal.signal(signal.SIGTERM, stop)
    if args.log_level.upper() == "INFO":  # the timeline tells the story; logs go to the run dir
        logging.getLogger().setLevel(logging.WARNING)
    console = Console(width=max(120, Console().width), soft_wrap=True)
    return Story(DemoConfig(run_dir=args.run_dir, rate=args.rate), console).run()
