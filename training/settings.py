"""The trainer's settings, read from the environment (prefix RELEARN_) by the entry points."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bus.settings import KafkaSettings
from training.gate import GateUnavailablePolicy
from training.hyperparameters import Hyperparameters


class TrainerSettings(KafkaSettings):
    """`relearn trainer` and `relearn train`: where data, artifacts, registry are; how to train."""

    artifact_dir: Path | None = None  # default: state_dir/artifacts (as the registry)
    registry_url: str = "http://127.0.0.1:8080"
    registry_timeout: float = Field(default=5.0, gt=0)
    # Test and demo hooks (`<faults_dir>/<type>.degrade`, `<faults_dir>/crash.<point>`): off
    # unless RELEARN_FAULT_INJECTION=true; a default trainer never looks at faults_dir.
    fault_injection: bool = False
    faults_dir: Path = Path(".relearn/faults")
    # With fault injection on, how long the start-up check waits for the registry to answer.
    fault_injection_registry_wait_seconds: float = Field(default=60.0, ge=0)
    trainer_group_id: str = "relearn-trainer"
    # /metrics, /livez, /readyz (docs/metrics.md); 127.0.0.1 is unreachable from other hosts.
    trainer_web_host: str = "127.0.0.1"
    trainer_web_port: int = Field(default=6067, ge=1, le=65535)
    # A stopped (or SIGSTOPped) worker's commands move to a live one after this long.
    trainer_session_timeout_ms: int = Field(default=45_000, ge=6_000)
    training_window_days: float = Field(default=90.0, gt=0)
    # At most this many of the newest training-samples records per partition are read.
    training_max_records: int = Field(default=50_000, ge=1)
    training_min_samples: int = Field(default=200, ge=3)
    gate_tolerance: float = Field(default=0.05, ge=0)
    # Production exists but cannot be compared (registry down, artifact unscorable): reject
    # (fail closed) or deploy ungated. Registry reads are tried gate_attempts times first.
    gate_unavailable_policy: GateUnavailablePolicy = GateUnavailablePolicy.REJECT
    gate_attempts: int = Field(default=3, ge=1)
    gate_retry_seconds: float = Field(default=2.0, ge=0)
    training_seed: int = 42
    training_max_epochs: int = Field(default=100, ge=1)
    training_patience: int = Field(default=10, ge=1)
    training_batch_size: int = Field(default=256, ge=1)
    training_learning_rate: float = Field(default=1e-3, gt=0)
    training_threads: int = Field(default=1, ge=1)
    parity_atol: float = Field(default=1e-5, ge=0)
    parity_rtol: float = Field(default=1e-4, ge=0)
    onnx_opset: int = Field(default=17, ge=13)

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters(
            seed=self.training_seed,
            max_epochs=self.training_max_epochs,
            patience=self.training_patience,
            batch_size=self.training_batch_size,
            learning_rate=self.training_learning_rate,
            threads=self.training_threads,
        )

    def resolved_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.state_dir / "artifacts").resolve()

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "trainer-commands.sqlite"
