"""The simulator's scenarios, and when each writes the trainer's fault-injection file.

- `steady`: nothing injected; events flow and whatever the registry serves serves.
- `aa`: nothing injected either; named for what it is used for: candidates trained on the
  same world are as good as production, so the A/B test should keep watching (an A/A test).
- `bad-candidate`: as soon as the model type is served by a real version (the first event
  served by a version other than v0.0; at once when one already serves), it writes
  `<faults dir>/<type>.degrade` = 1.0. The NEXT model trained is then perturbed to near-random
  scores after passing its offline gate, arrives as a staging candidate at 10%, lowers the
  positive outcome rate and raises the squared error: the A/B test should roll it back.
- `good-candidate`: when the model type has no version yet (its first event is served as v0.0),
  it writes `<type>.degrade` = 0.6 at once: the first model (v1.0, which becomes production) is
  mildly degraded, and the next candidate, trained normally on more data, beats it: the A/B
  test should promote it. When a version already serves, production is taken as healthy and
  nothing is written (a warning says so): start this scenario on a fresh model type.

Only a trainer started with RELEARN_FAULT_INJECTION=true reads these files; `relearn simulate`
writes them only when its own environment says so too (otherwise its FaultPlan has no
directory and writes nothing).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from contracts.versions import NO_MODEL_VERSION

log = logging.getLogger(__name__)

BAD_CANDIDATE_STRENGTH = 1.0
GOOD_CANDIDATE_PRODUCTION_STRENGTH = 0.6


class Scenario(StrEnum):
    STEADY = "steady"
    GOOD_CANDIDATE = "good-candidate"
    BAD_CANDIDATE = "bad-candidate"
    AA = "aa"


def fault_path(faults_dir: Path, model_type: str) -> Path:
    return Path(faults_dir) / f"{model_type}.degrade"


def write_fault(faults_dir: Path, model_type: str, strength: float) -> Path:
    """Ask the trainer to degrade the next model of `model_type` (atomic write, then rename)."""
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise ValueError(f"fault strength must be in (0, 1], got {strength}")
    path = fault_path(faults_dir, model_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".degrade.partial")
    partial.write_text(f"{strength}\n")
    partial.replace(path)
    return path


@dataclass(frozen=True)
class FaultWritten:
    model_type: str
    strength: float
    path: str
    at_message: int


@dataclass
class FaultPlan:
    """Watches which version serves each model type and writes the scenario's fault, once."""

    scenario: Scenario
    faults_dir: Path | None  # None: fault injection is off, nothing is written
    bad_strength: float = BAD_CANDIDATE_STRENGTH
    good_strength: float = GOOD_CANDIDATE_PRODUCTION_STRENGTH
    written: list[FaultWritten] = field(default_factory=list)
    _settled: set[str] = field(default_factory=set)

    def observe(self, model_type: str, version: str, message_index: int) -> FaultWritten | None:
        """Called with the version that served each visit; returns the fault it wrote, if any."""
        if model_type in self._settled:
            return None
        strength: float | None = None
        if self.scenario is Scenario.BAD_CANDIDATE:
            if version == NO_MODEL_VERSION:
                return None  # wait for a production model before spoiling the next one
            strength = self.bad_strength
        elif self.scenario is Scenario.GOOD_CANDIDATE:
            if version == NO_MODEL_VERSION:
                strength = self.good_strength
            else:
                log.warning(
                    "good-candidate: %s already serves %s; production is taken as healthy and no "
                    "fault is written (start this scenario on a fresh model type)",
                    model_type,
                    version,
                )
        self._settled.add(model_type)
        if strength is None:
            return None
        if self.faults_dir is None:
            log.warning(
                "scenario %s: fault injection is off; no %s fault written, so no %s model "
                "will be degraded",
                self.scenario.value,
                strength,
                model_type,
            )
            return None
        path = write_fault(self.faults_dir, model_type, strength)
        fault = FaultWritten(model_type, strength, str(path), message_index)
        self.written.append(fault)
        log.info(
            "scenario %s: wrote %s = %s (the next %s model will be degraded)",
            self.scenario.value,
            path,
            strength,
            model_type,
        )
        return fault
