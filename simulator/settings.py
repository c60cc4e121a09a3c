"""The simulator's settings: Kafka's (from bus/), plus where the registry and the fault files are."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bus.settings import KafkaSettings


class SimulatorSettings(KafkaSettings):
    """RELEARN_REGISTRY_URL, RELEARN_FAULT_INJECTION, RELEARN_FAULTS_DIR and the hostile world's
    RELEARN_SIMULATE_OUTCOME_DELAYS, RELEARN_SIMULATE_POSITIVE_DELAY_FRACTION, on top of Kafka's."""

    registry_url: str = "http://127.0.0.1:8080"
    # The same variables as the trainer's: a fault file is written only when they say that a
    # fault-enabled trainer reads this directory.
    fault_injection: bool = False
    faults_dir: Path = Path(".relearn/faults")
    # The hostile world (opt-in; simulator/delays.py): each outcome is reported after serving,
    # a positive within this fraction of its model type's `outcome_window_seconds`, a negative
    # when the window closes. Off (the demo), an outcome is reported as it is served.
    simulate_outcome_delays: bool = False
    simulate_positive_delay_fraction: float = Field(default=0.1, gt=0, le=1)
