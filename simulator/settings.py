"""The simulator's settings: Kafka's (from bus/), plus where the registry and the fault files are."""

from __future__ import annotations

from pathlib import Path

from bus.settings import KafkaSettings


class SimulatorSettings(KafkaSettings):
    """RELEARN_REGISTRY_URL, RELEARN_FAULT_INJECTION and RELEARN_FAULTS_DIR, on top of Kafka's."""

    registry_url: str = "http://127.0.0.1:8080"
    # The same variables as the trainer's: a fault file is written only when they say that a
    # fault-enabled trainer reads this directory.
    fault_injection: bool = False
    faults_dir: Path = Path(".relearn/faults")
