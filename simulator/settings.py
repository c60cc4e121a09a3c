"""The simulator's settings: Kafka's (from bus/), plus where the registry and the fault files are."""

from __future__ import annotations

from pathlib import Path

from bus.settings import KafkaSettings


class SimulatorSettings(KafkaSettings):
    """RELEARN_REGISTRY_URL and RELEARN_FAULTS_DIR, on top of the shared Kafka settings."""

    registry_url: str = "http://127.0.0.1:8080"
    faults_dir: Path = Path(".relearn/faults")
