"""Fault injection only when enabled: a default trainer ignores fault files, an enabled one marks
its models and refuses a registry that serves other models; simulate says what it writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from contracts.events import ModelDeployed
from contracts.model_types import BUILT_IN, ModelTypeCatalog
from contracts.topics import Topics
from registry.main import create_app
from registry.settings import RegistrySettings
from relearn.commands.simulate import _faults_dir
from simulator.scenarios import FaultPlan, Scenario
from simulator.settings import SimulatorSettings
from tests.conftest import free_port
from tests.training.conftest import dataset_of
from tests.training.kafka_helpers import command, produce_command, produce_samples, read_topic
from training.artifacts import LocalArtifactStore
from training.errors import FaultInjectionRefusedError
from training.faults import FileFaults, check_registry_is_a_test_bed
from training.pipeline import PipelineConfig, TrainingPipeline, deployment_event
from training.production import FixedProductionSource, RegistryHttp
from training.service import build_pipeline, build_worker
from training.settings import TrainerSettings
from training.synthetic import synthetic_samples

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ModelTypeCatalog(BUILT_IN)
FAULT_FILES = ("calling_score.degrade", "crash.after_artifact", "crash.before_publish")


def _plant_fault_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "calling_score.degrade").write_text("1.0")
    (directory / "crash.after_artifact").touch()
    (directory / "crash.before_publish").touch()


def _child_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEARN_")}
    env["PYTHONPATH"] = str(ROOT)
    env["RELEARN_TRAINER_WEB_PORT"] = str(free_port())  # its /metrics; 6067 may be taken
    env.update(settings)
    return env


def test_default_settings_wire_no_fault_hooks(tmp_path: Path) -> None:
    settings = TrainerSettings(state_dir=tmp_path, registry_url="http://127.0.0.1:1")
    assert settings.fault_injection is False
    assert build_pipeline(settings).faults is None
    assert build_worker(settings).faults is None
    enabled = TrainerSettings(state_dir=tmp_path, fault_injection=True, faults_dir=tmp_path)
    assert isinstance(build_pipeline(enabled).faults, FileFaults)
    assert build_pipeline(enabled, faults=False).faults is None  # the manual path: never


@pytest.mark.integration
def test_a_default_trainer_ignores_degrade_and_crash_files_in_its_working_directory(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """`relearn trainer` with default fault settings, started where fault files wait (its
    default faults dir, `.relearn/faults`): it trains, neither degrades nor dies, reads none."""
    workdir = tmp_path / "work"
    _plant_fault_files(workdir / ".relearn" / "faults")
    produce_samples(
        kafka_bootstrap, topics.training_samples, synthetic_samples(400, "calling_score", seed=5)
    )
    env = _child_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        RELEARN_TOPIC_PREFIX=topic_prefix,
        RELEARN_TRAINER_GROUP_ID=f"{topic_prefix}trainer",
        # no registry in this test: the gate's deploy policy lets the model through to publish
        RELEARN_REGISTRY_URL="http://127.0.0.1:1",
        RELEARN_GATE_UNAVAILABLE_POLICY="deploy",
        RELEARN_GATE_ATTEMPTS="1",
        RELEARN_TRAINING_MIN_SAMPLES="100",
        RELEARN_TRAINING_MAX_EPOCHS="20",
        RELEARN_TRAINING_PATIENCE="20",
        RELEARN_TRAINING_BATCH_SIZE="64",
    )
    log_path = tmp_path / "trainer.log"
    with log_path.open("wb") as log:
        trainer = subprocess.Popen(
            [sys.executable, "-m", "relearn.cli", "trainer"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        retrain = command("calling_score")
        produce_command(kafka_bootstrap, topics.retrain_commands, retrain)
        (message,) = read_topic(kafka_bootstrap, topics.model_deployed, 1, timeout=240)
        event = ModelDeployed.model_validate_json(message.value() or b"")
        time.sleep(2)  # the before_publish crash point would come right after
        assert trainer.poll() is None, log_path.read_text()
        trainer.send_signal(signal.SIGTERM)
        assert trainer.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    text = log_path.read_text()
    assert event.command_id == retrain.command_id
    extra = event.metrics.model_extra or {}
    assert not {"fault_injection", "fault_injected", "degraded_after_gate"} & set(extra), extra
    # a near-random model (the degrade file) scores far worse than the clean MSE of this data
    assert event.metrics.test_loss < 0.1, event.metrics
    for name in FAULT_FILES:
        assert (workdir / ".relearn" / "faults" / name).exists(), name
    assert "fault_injection=off" in text and "FAULT INJECTION" not in text
    assert "SIGKILL" not in text


def test_the_start_up_check_refuses_a_registry_that_serves_other_models(
    tmp_path: Path, quick_config: PipelineConfig
) -> None:
    spec = CATALOG.get("calling_score")
    assert spec is not None
    dataset = dataset_of(spec.name, 300, seed=3)
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    settings = RegistrySettings(
        state_dir=tmp_path, artifact_dir=tmp_path / "artifacts", api_token=SecretStr("t"),
        registry_kafka_enabled=False,
    )  # fmt: skip

    def register(pipeline: TrainingPipeline) -> None:
        candidate = pipeline.build(spec, dataset)
        stored = artifacts.put(spec.name, candidate.proven.onnx)
        service = client.app.state.service  # type: ignore[attr-defined]
        service.register_deployment(deployment_event(candidate, stored, None, None))

    faulty = TrainingPipeline(
        CATALOG, quick_config, FixedProductionSource(), faults=FileFaults(tmp_path / "faults")
    )
    plain = TrainingPipeline(CATALOG, quick_config, FixedProductionSource())
    with TestClient(create_app(settings)) as client:
        registry = RegistryHttp("", client=client)
        check_registry_is_a_test_bed(registry, 0)  # empty: a fresh test bed
        register(faulty)
        record = registry.version_record(spec.name, "v1.0")
        assert record.metrics["fault_injection"] is True  # kept with the version, and shown
        check_registry_is_a_test_bed(registry, 0)
        register(plain)  # a staging v1.1 from a default trainer: real traffic
        with pytest.raises(FaultInjectionRefusedError, match="calling_score v1.1"):
            check_registry_is_a_test_bed(registry, 0)


def test_the_start_up_check_refuses_a_registry_it_cannot_reach() -> None:
    slept: list[float] = []
    with pytest.raises(FaultInjectionRefusedError, match="could not be checked within 2 s"):
        check_registry_is_a_test_bed(
            RegistryHttp("http://127.0.0.1:1", timeout=0.5), 2.0, sleep=slept.append
        )


def test_relearn_trainer_with_fault_injection_and_no_registry_exits_non_zero(
    tmp_path: Path,
) -> None:
    faults = tmp_path / "faults"
    _plant_fault_files(faults)
    done = subprocess.run(
        [sys.executable, "-m", "relearn.cli", "trainer"],
        cwd=tmp_path,
        env=_child_env(
            RELEARN_FAULT_INJECTION="true",
            RELEARN_FAULTS_DIR=str(faults),
            RELEARN_REGISTRY_URL="http://127.0.0.1:1",
            RELEARN_FAULT_INJECTION_REGISTRY_WAIT_SECONDS="0",
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "WARNING training.service FAULT INJECTION IS ON" in done.stderr
    assert str(faults.resolve()) in done.stderr
    assert "relearn: error: fault injection is on" in done.stderr
    assert all((faults / name).exists() for name in FAULT_FILES)


def test_simulate_writes_a_fault_only_where_fault_injection_is_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    off = SimulatorSettings(faults_dir=tmp_path)
    assert _faults_dir(Scenario.BAD_CANDIDATE, off) is None
    assert "no fault file is written" in capsys.readouterr().err
    plan = FaultPlan(Scenario.BAD_CANDIDATE, None)
    assert plan.observe("calling_score", "v1.0", 10) is None and not list(tmp_path.iterdir())

    on = SimulatorSettings(faults_dir=tmp_path, fault_injection=True)
    where = _faults_dir(Scenario.BAD_CANDIDATE, on)
    assert where == tmp_path.resolve()
    assert "RELEARN_FAULT_INJECTION=true" in capsys.readouterr().err
    written = FaultPlan(Scenario.BAD_CANDIDATE, where).observe("calling_score", "v1.0", 10)
    assert written is not None
    assert orjson.loads((tmp_path / "calling_score.degrade").read_text()) == 1.0
    assert _faults_dir(Scenario.STEADY, on) is None  # steady writes nothing, says nothing
    assert capsys.readouterr().err == ""
