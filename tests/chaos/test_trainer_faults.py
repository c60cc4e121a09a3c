"""Priority 3: a trainer SIGKILLed after the artifact is written but before publish and commit,
and a trainer SIGSTOPped past its session timeout then SIGCONTed (a zombie that publishes late):
exactly one registered version per retrain command.

The crash points are files a trainer started with RELEARN_FAULT_INJECTION=true honours
(`training.faults.crash_point`): `<faults_dir>/crash.after_artifact` and
`<faults_dir>/crash.before_publish`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from contracts.topics import Topics
from tests.chaos.harness import Registry, ScenarioFigures, Trainer, elapsed_since
from tests.streams.harness import consumer_lag, read_topic, wait_until
from tests.training.kafka_helpers import command, produce_command, produce_samples
from training.faults import crash_point
from training.synthetic import synthetic_samples

pytestmark = pytest.mark.integration

MT = "calling_score"


def test_crash_point_kills_once_and_only_when_its_file_exists(tmp_path: Path) -> None:
    crash_point(tmp_path, "before_publish")  # no file: nothing happens
    (tmp_path / "crash.before_publish").touch()
    code = (
        "import sys; from pathlib import Path; from training.faults import crash_point; "
        f"crash_point(Path({str(tmp_path)!r}), 'before_publish'); sys.exit(3)"
    )
    died = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    assert died.returncode == -signal.SIGKILL
    assert not (tmp_path / "crash.before_publish").exists()
    again = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    assert again.returncode == 3


def versions_of(registry: Registry) -> list[dict]:
    try:
        return httpx.get(f"{registry.url}/models/{MT}/versions", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return []


def registered(registry: Registry, command_id: str) -> list[dict]:
    return [v for v in versions_of(registry) if v.get("command_id") == command_id]


def deployments_published(bootstrap: str, topics: Topics) -> Counter[str]:
    """Distinct deployment ids published per command id."""
    seen: dict[str, set[str]] = {}
    for m in read_topic(bootstrap, topics.model_deployed):
        event = orjson.loads(m.value())
        seen.setdefault(event["command_id"], set()).add(event["deployment_id"])
    return Counter({c: len(ids) for c, ids in seen.items()})


@pytest.mark.scenario("3 trainer SIGKILL before publish + zombie", size="ci+full")
def test_trainer_killed_before_publish_and_zombie_trainer_register_one_version_per_command(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    produce_samples(kafka_bootstrap, topics.training_samples, synthetic_samples(3_000, MT))
    registry = Registry.for_scenario(kafka_bootstrap, topic_prefix, tmp_path)
    group = f"chaos-trainer-{uuid.uuid4().hex[:8]}"
    shared = {
        "RELEARN_ARTIFACT_DIR": str(registry.state_dir / "artifacts"),
        "RELEARN_TRAINER_SESSION_TIMEOUT_MS": "6000",
        "RELEARN_GATE_TOLERANCE": "1000",
    }
    trainer = Trainer(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "trainer-a",
        group,
        registry.url,
        RELEARN_FAULT_INJECTION="true",  # the crash files below; the others are default trainers
        **shared,
    )
    faults = trainer.state_dir / "faults"
    faults.mkdir(parents=True)
    others: list[Trainer] = []
    recoveries: list[float] = []
    commands: list[str] = []
    try:
        registry.start().wait_ready()
        trainer.start()
        # 1. SIGKILL after the artifact is stored, then after the outcome is recorded
        for point in ("after_artifact", "before_publish"):
            (faults / f"crash.{point}").touch()
            retrain = command(MT)
            commands.append(retrain.command_id)
            produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
            assert trainer.process is not None
            assert trainer.process.wait(timeout=120) == -signal.SIGKILL, point
            killed = time.monotonic()
            assert not registered(registry, retrain.command_id)
            trainer.start()
            wait_until(
                lambda c=retrain.command_id: registered(registry, c),
                120,
                f"command after a crash at {point} never registered",
            )
            recoveries.append(elapsed_since(killed))

        # 2. a zombie: SIGSTOPped mid-training past its session timeout, SIGCONTed after the
        #    group gave its command to another worker (its own ledger: another machine)
        slow = {**shared, "RELEARN_TRAINING_MAX_EPOCHS": "80", "RELEARN_TRAINING_PATIENCE": "80"}
        trainer.stop()
        zombie = Trainer(
            kafka_bootstrap, topic_prefix, tmp_path / "trainer-b", group, registry.url, **slow
        )
        others.append(zombie)
        zombie.start()
        time.sleep(8)  # joined the group and warmed up
        retrain = command(MT)
        commands.append(retrain.command_id)
        produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
        wait_until(
            lambda: f"command_id={retrain.command_id}" in zombie.log_text(),
            60,
            "the zombie never took the command",
        )
        zombie.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        successor = Trainer(
            kafka_bootstrap, topic_prefix, tmp_path / "trainer-c", group, registry.url, **slow
        )
        others.append(successor)
        successor.start()
        wait_until(
            lambda: registered(registry, retrain.command_id),
            180,
            "the successor never settled the zombie's command",
        )
        recoveries.append(elapsed_since(stopped))
        zombie.signal(signal.SIGCONT)
        wait_until(
            lambda: any(
                "published" in line and retrain.command_id in line
                for line in zombie.log_text().splitlines()
            ),
            120,
            "the zombie never published its late outcome",
        )
        published = wait_until(
            lambda: (lambda p: p if p[retrain.command_id] >= 2 else None)(
                deployments_published(kafka_bootstrap, topics)
            ),
            30,
            "the zombie's late deployment never reached model-deployed",
        )
        # versions are counted only once the registry has consumed the late deployment
        registry_group = f"{registry.env['RELEARN_REGISTRY_CONSUMER_GROUP']}.model-deployed"
        wait_until(
            lambda: consumer_lag(kafka_bootstrap, registry_group, topics.model_deployed) == 0,
            60,
            "the registry never consumed the zombie's late deployment",
        )
        per_command = {c: len(registered(registry, c)) for c in commands}
        lost = sum(1 for n in per_command.values() if n == 0)
        doubled = sum(n - 1 for n in per_command.values() if n > 1)
        assert per_command == {c: 1 for c in commands}, per_command
        assert all(s.alive for s in (registry, *others)), "a service died"
        record_row(
            ScenarioFigures(
                len(commands),
                "SIGKILL after artifact, SIGKILL before publish, SIGSTOP 6 s session + SIGCONT",
                lost,
                doubled,
                max(recoveries),
                notes=(
                    f"recoveries {recoveries} s (fault to the command's version registered); "
                    f"versions per command id {list(per_command.values())}; distinct deployments "
                    f"published per command {[published[c] for c in commands]}, the zombie's late "
                    "one consumed by the registry (lag 0) before counting"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        for service in (trainer, *others, registry):
            if service.alive:
                service.signal(signal.SIGCONT)
            service.stop()
