"""`make run`: the whole loop once on a local stack, told as a live timeline, ending by itself.

The story: outcome events arrive while no model exists (v0.0); at 1,000 new samples streams fires
a retrain command; the trainer trains and proves v1.0, which the registry makes production. A
deliberately broken next model (fault injection: it passes its offline gate, then serves
near-random scores) arrives as a staging candidate at 10% and the live sequential test rolls it
back; the next, healthy candidate beats the weak first production model and is promoted
0.1 -> 0.5 -> 1.0. At the end the versions and daily performance tables are printed.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from bus import local_broker
from bus.settings import KafkaSettings
from contracts.events import RegistryEventOccurred, RegistryEventType, RetrainRequested
from registry.client import RegistryClient, RegistryClientError
from registry.views import VersionOut
from relearn.errors import RelearnError
from relearn.stack import ensure_broker, ensure_topics
from relearn.supervisor import ServiceSpec, Supervisor, relearn_argv
from relearn.timeline import Step, TimelineFollower
from simulator.scenarios import write_fault

MODEL_TYPE = "calling_score"
WEAK_PRODUCTION_STRENGTH = 0.6  # the first production model is mildly degraded ...
BAD_CANDIDATE_STRENGTH = 1.0  # ... the first candidate is broken, the next one is healthy


class DemoFailed(RelearnError):
    """A step of the story did not happen in time; the message says which."""


@dataclass(frozen=True)
class DemoConfig:
    run_dir: Path
    rate: float = 250.0
    step_timeout: float = 180.0
    total_timeout: float = 540.0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(preferred: int) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_environment(run_dir: Path, run_id: str) -> dict[str, str]:
    """The settings every process of this run shares: its own topics, state, ports and token."""
    registry_port = _pick_port(8080)
    streams_port = _pick_port(6066)
    trainer_port = _pick_port(6067)
    return {
        "RELEARN_TOPIC_PREFIX": f"run{run_id}-",
        "RELEARN_STATE_DIR": str(run_dir / "state"),
        # The story breaks two models on purpose: this run's trainer reads this run's fault
        # files, and its registry is this run's own (the trainer checks that at start-up).
        "RELEARN_FAULT_INJECTION": "true",
        "RELEARN_FAULT_INJECTION_REGISTRY_WAIT_SECONDS": "120",  # as long as the demo waits
        "RELEARN_FAULTS_DIR": str(run_dir / "faults"),
        "RELEARN_ARTIFACT_DIR": str(run_dir / "artifacts"),
        "RELEARN_API_TOKEN": secrets.token_urlsafe(24),
        "RELEARN_REGISTRY_PORT": str(registry_port),
        "RELEARN_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
        "RELEARN_STREAMS_WEB_PORT": str(streams_port),
        "RELEARN_STREAMS_URL": f"http://127.0.0.1:{streams_port}",
        "RELEARN_TRAINER_WEB_PORT": str(trainer_port),  # /metrics /livez /readyz
        "RELEARN_RETRAIN_SAMPLE_THRESHOLD": "1000",
        # The A/B test judges cohorts once their outcome window has passed in event time: the
        # simulator reports outcomes as it serves, so a few seconds fit the demo's time scale.
        "RELEARN_MODEL_TYPES_FILE": str(_demo_model_types(run_dir)),
        "RELEARN_ABTEST_WATERMARK_ALLOWANCE_SECONDS": "2",
    }


DEMO_OUTCOME_WINDOW_SECONDS = 5.0


def _demo_model_types(run_dir: Path) -> Path:
    """The built-in model types with the demo's short outcome window."""
    from contracts.model_types import BUILT_IN

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "model_types.yaml"
    entries = [
        spec.model_dump(mode="json", exclude={"trainer", "features"})
        | {"outcome_window_seconds": DEMO_OUTCOME_WINDOW_SECONDS}
        for spec in BUILT_IN
    ]
    path.write_text(yaml.safe_dump({"model_types": entries}))
    return path


def wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise DemoFailed(f"{what} did not answer at {url} within {timeout:.0f} s")


def wait_log(path: Path, text: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise DemoFailed(f"{what} did not log {text!r} within {timeout:.0f} s (see {path})")


def is_event(
    kind: RegistryEventType, version: str | None = None, other_than: Iterable[str | None] = ()
) -> Callable[[BaseModel], bool]:
    """A registry event of this kind (of `version`, or of a version not in `other_than`)."""
    excluded = set(other_than)

    def matches(event: BaseModel) -> bool:
        return (
            isinstance(event, RegistryEventOccurred)
            and event.type is kind
            and (version is None or event.version == version)
            and event.version not in excluded
        )

    return matches


class Story:
    """Runs the demo: stack, services, simulator, timeline, tables."""

    def __init__(self, config: DemoConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.started = time.monotonic()
        run_id = time.strftime("%Y%m%d%H%M%S")
        self.run_dir = config.run_dir / run_id
        self.env = {**os.environ, **service_environment(self.run_dir, run_id)}
        self.timeline: TimelineFollower | None = None
        self.printed = 0
        self.versions: list[VersionOut] = []  # the registry's versions table at the end
        self.performance: list[dict] = []  # streams' daily performance rows at the end

    # -- output ----------------------------------------------------------------------------
    def say(self, text: str, style: str = "") -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[dim]{elapsed:6.1f}s[/dim]  {text}", style=style, highlight=False)

    def flush_timeline(self) -> None:
        if self.timeline is None:
            return
        for step in self.timeline.history[self.printed :]:
            self.say(step.describe(), style=_style(step))
        self.printed = len(self.timeline.history)

    def wait_for(self, predicate: Callable[[BaseModel], bool], what: str) -> Step:
        assert self.timeline is not None
        deadline = time.monotonic() + self.config.step_timeout
        while time.monotonic() < deadline:
            step = self.timeline.wait_for(predicate, timeout=0.5)
            self.flush_timeline()
            if step is not None:
                return step
            if time.monotonic() - self.started > self.config.total_timeout:
                break
        raise DemoFailed(f"timed out waiting for: {what}")

    # -- the story ---------------------------------------------------------------------------
    def run(self) -> int:
        settings = KafkaSettings(topic_prefix=self.env["RELEARN_TOPIC_PREFIX"])
        self.say(f"relearn demo, run directory {self.run_dir}")
        started_broker = ensure_broker(settings)
        self.say(
            f"Kafka at {settings.bootstrap_servers}"
            + (" (started locally for this run)" if started_broker else " (already running)")
        )
        ensure_topics(settings)
        self.say(f"topics created under prefix {settings.topic_prefix!r}")
        faults = Path(self.env["RELEARN_FAULTS_DIR"])
        write_fault(faults, MODEL_TYPE, WEAK_PRODUCTION_STRENGTH)
        self.say(
            f"fault injection: the first {MODEL_TYPE} model will be mildly degraded "
            f"({WEAK_PRODUCTION_STRENGTH}), so a later healthy candidate can beat it"
        )
        services = [
            ServiceSpec("streams", relearn_argv("streams")),
            ServiceSpec("trainer", relearn_argv("trainer")),
            ServiceSpec("registry", relearn_argv("registry")),
        ]
        supervisor = Supervisor(services, base_env=self.env, log_dir=self.run_dir / "logs")
        simulator = Supervisor(
            [
                ServiceSpec(
                    "simulator",
                    relearn_argv(
                        "simulate",
                        "--scenario",
                        "steady",
                        "--rate",
                        str(self.config.rate),
                        "--events",
                        "10000000",
                        "--model-type",
                        MODEL_TYPE,
                        "--no-progress",
                    ),
                )
            ],
            base_env=self.env,
            log_dir=self.run_dir / "logs",
        )
        self.timeline = TimelineFollower(
            settings.bootstrap_servers,
            settings.topics,
            self.env["RELEARN_STREAMS_URL"],
            (MODEL_TYPE,),
        ).start()
        try:
            supervisor.start()
            wait_http(self.env["RELEARN_REGISTRY_URL"] + "/healthz", 120, "the registry")
            wait_http(self.env["RELEARN_STREAMS_URL"] + f"/samples/{MODEL_TYPE}", 120, "streams")
            # The fault-enabled trainer checks the registry before it consumes: wait for it, so
            # the first threshold crossing finds a trainer (not a queue of commands).
            wait_log(self.run_dir / "logs" / "trainer.log", "trainer consuming", 120, "the trainer")
            self.say(
                f"services up: registry {self.env['RELEARN_REGISTRY_URL']}, "
                f"streams {self.env['RELEARN_STREAMS_URL']}; dashboard "
                f"{self.env['RELEARN_REGISTRY_URL']}/"
            )
            simulator.start()
            self.say(f"simulator sending {self.config.rate:.0f} outcome events/s for {MODEL_TYPE}")
            self._tell(faults)
            self.say("story complete", style="bold green")
        except DemoFailed as exc:
            self.flush_timeline()
            self.say(f"demo failed: {exc}", style="bold red")
            self._show_log_tails()
            return 1
        finally:
            simulator.stop()
            self.flush_timeline()
            try:
                self._print_tables()
            except (httpx.HTTPError, RegistryClientError) as exc:
                self.say(f"could not read the final tables: {exc}", style="red")
            supervisor.stop()
            self.timeline.stop()
            if started_broker:
                layout = local_broker.read_layout(Path(".relearn") / "kafka")
                if layout:
                    local_broker.down(layout)
                self.say("local Kafka stopped")
        return 0

    def _tell(self, faults: Path) -> None:
        self.wait_for(lambda e: isinstance(e, RetrainRequested), "the first retrain command")
        first = self.wait_for(is_event(RegistryEventType.VERSION_REGISTERED), "v1.0 registered")
        production = first.event.version  # type: ignore[attr-defined]
        write_fault(faults, MODEL_TYPE, BAD_CANDIDATE_STRENGTH)
        self.say(
            f"fault injection: the next {MODEL_TYPE} model will serve near-random scores",
            style="yellow",
        )
        bad = self.wait_for(
            is_event(RegistryEventType.VERSION_REGISTERED, other_than={production}),
            "a candidate registered",
        )
        bad_version = bad.event.version  # type: ignore[attr-defined]
        self.wait_for(
            is_event(RegistryEventType.VERSION_ROLLED_BACK, bad_version),
            f"{bad_version} rolled back",
        )
        self.wait_for(
            is_event(RegistryEventType.VERSION_PROMOTED, other_than={production, bad_version}),
            "a healthy candidate promoted to production",
        )

    def _print_tables(self) -> None:
        with RegistryClient(self.env["RELEARN_REGISTRY_URL"]) as registry:
            versions = registry.versions(MODEL_TYPE)
        self.versions = versions
        table = Table(title=f"{MODEL_TYPE} versions")
        for column in (
            "version",
            "status",
            "weight",
            "test loss",
            "val loss",
            "train samples",
            "fault",
            "created",
        ):
            table.add_column(column)
        for v in versions:
            metrics = v.metrics
            table.add_row(
                v.version,
                v.status,
                f"{v.weight:.2f}",
                _fmt(metrics.get("test_loss")),
                _fmt(metrics.get("val_loss")),
                str(metrics.get("train_samples", "")),
                str(metrics.get("fault_injected", "")),
                v.created_at.isoformat()[:19],
            )
        self.console.print(table)
        streams = self.env["RELEARN_STREAMS_URL"]
        rows = httpx.get(f"{streams}/performance/{MODEL_TYPE}?days=7", timeout=10).json()
        rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
        self.performance = rows
        perf = Table(title=f"{MODEL_TYPE} daily performance")
        for column in (
            "day",
            "version",
            "samples",
            "positive rate",
            "avg prediction",
            "avg outcome score",
        ):
            perf.add_column(column)
        for row in rows:
            perf.add_row(
                row["day"],
                row["version"],
                str(row["sample_count"]),
                f"{row['positive_outcome_rate']:.3f}",
                f"{row['avg_prediction']:.3f}",
                f"{row['avg_outcome_score']:.3f}",
            )
        self.console.print(perf)

    def _show_log_tails(self) -> None:
        for log_file in sorted((self.run_dir / "logs").glob("*.log")):
            lines = log_file.read_text(errors="replace").splitlines()[-15:]
            self.console.print(f"--- end of {log_file} ---", style="dim")
            for line in lines:
                self.console.print(line, markup=False, highlight=False)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


def _style(step: Step) -> str:
    event = step.event
    if isinstance(event, RegistryEventOccurred):
        return {
            RegistryEventType.VERSION_ROLLED_BACK: "bold red",
            RegistryEventType.VERSION_PROMOTED: "bold green",
            RegistryEventType.DEPLOYMENT_REJECTED: "red",
            RegistryEventType.ARTIFACT_REJECTED: "red",
        }.get(event.type, "cyan")
    return ""
