"""`relearn up [--simulate SCENARIO]`: Kafka if needed, then all three services under one supervisor."""

from __future__ import annotations

import argparse
import signal
import time

from bus.settings import KafkaSettings
from relearn.stack import ensure_broker, ensure_topics
from relearn.supervisor import ServiceSpec, Supervisor, relearn_argv

MAX_RESTARTS = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser("up", help="Kafka if needed, then streams, trainer and registry")
    up.add_argument("--simulate", metavar="SCENARIO", help="also run the simulator with a scenario")
    up.add_argument("--rate", type=float, default=200.0, help="simulator events per second")
    up.add_argument("--events", type=int, default=1_000_000, help="simulator event count")
    up.set_defaults(handler=_up)


def _up(args: argparse.Namespace) -> int:
    from registry.settings import RegistrySettings
    from streams.settings import StreamsSettings
    from training.settings import TrainerSettings

    settings = KafkaSettings()
    started_broker = ensure_broker(settings)
    ensure_topics(settings)
    print(
        f"Kafka at {settings.bootstrap_servers}" + (" (started locally)" if started_broker else "")
    )
    # Each service's own web port serves /metrics, /livez, /readyz (docs/metrics.md).
    web = {
        "streams": StreamsSettings().streams_web_port,
        "trainer": TrainerSettings().trainer_web_port,
        "registry": RegistrySettings().registry_port,
    }
    specs = [
        ServiceSpec("streams", relearn_argv("streams")),
        ServiceSpec("trainer", relearn_argv("trainer")),
        ServiceSpec("registry", relearn_argv("registry")),
    ]
    if args.simulate:
        specs.append(
            ServiceSpec(
                "simulator",
                relearn_argv(
                    "simulate",
                    "--scenario",
                    args.simulate,
                    "--rate",
                    str(args.rate),
                    "--events",
                    str(args.events),
                ),
            )
        )
    supervisor = Supervisor(specs, echo=lambda name, line: print(f"{name:>9} | {line}", flush=True))
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    restarts: dict[str, int] = {}
    supervisor.start()
    print("all services started; Ctrl-C stops them")
    print("metrics: " + ", ".join(f"{name} 127.0.0.1:{port}/metrics" for name, port in web.items()))
    try:
        while not stopping:
            time.sleep(0.5)
            for name, code in supervisor.exited().items():
                if name == "simulator" and code == 0:
                    continue
                restarts[name] = restarts.get(name, 0) + 1
                if restarts[name] > MAX_RESTARTS:
                    print(f"{name} exited with {code} {MAX_RESTARTS} times: stopping everything")
                    return 1
                print(f"{name} exited with {code}: restarting ({restarts[name]}/{MAX_RESTARTS})")
                spec = next(s for s in specs if s.name == name)
                supervisor.start_one(spec)
    finally:
        print("stopping services...")
        supervisor.stop()
        print("stopped")
    return 0
