"""The live A/B comparison of a staging candidate with production, per model type (pure).

One experiment is (production, candidate, the full weight map): any change of the weights starts
a new one, so every ramp step is tested again on outcomes that arrive after it. The statistics
are `streams.sequential_test.decide`; this module only accumulates arms and turns a verdict into
a registry command, once per experiment.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from contracts.events import RegistryCommandIssued, RegistryCommandType
from contracts.serving import next_ramp_weight
from streams.registry_view import ModelTypeView
from streams.sequential_test import ArmSummary, SequentialDecision, Verdict, decide


@dataclass(frozen=True)
class Experiment:
    production: str
    candidate: str
    weights: tuple[tuple[str, float], ...]  # sorted, so equal maps compare equal
    started_at: float  # epoch seconds; outcomes that occurred before are not counted

    @property
    def candidate_weight(self) -> float:
        return dict(self.weights).get(self.candidate, 0.0)

    def key(self) -> str:
        weights = ",".join(f"{v}={w:g}" for v, w in self.weights)
        return f"{self.production}>{self.candidate}@{weights}"


def experiment_of(view: ModelTypeView | None) -> Experiment | None:
    """The running experiment of a model type: the two versions that carry traffic, production
    and a candidate (a production left without traffic, forced by an operator, runs none)."""
    if view is None or view.production is None or view.candidate is None:
        return None
    if view.weights.get(view.production, 0.0) <= 0.0:
        return None
    started = view.changed_at.timestamp() if view.changed_at is not None else 0.0
    weights = tuple(sorted((v, float(w)) for v, w in view.weights.items()))
    return Experiment(view.production, view.candidate, weights, started)


@dataclass(frozen=True)
class AbState:
    """Both arms of the current experiment and the decision taken in it, if any."""

    experiment: str = ""
    production: str = ""
    candidate: str = ""
    candidate_weight: float = 0.0
    started_at: float = 0.0
    production_arm: ArmSummary = field(default_factory=ArmSummary)
    candidate_arm: ArmSummary = field(default_factory=ArmSummary)
    decided: str | None = None  # the verdict acted on in this experiment (one command each)
    last: dict[str, Any] | None = None  # evidence of the last look

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "production": self.production,
            "candidate": self.candidate,
            "candidate_weight": self.candidate_weight,
            "started_at": self.started_at,
            "production_arm": _arm_to_list(self.production_arm),
            "candidate_arm": _arm_to_list(self.candidate_arm),
            "decided": self.decided,
            "last": self.last,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AbState:
        return cls(
            experiment=data.get("experiment", ""),
            production=data.get("production", ""),
            candidate=data.get("candidate", ""),
            candidate_weight=float(data.get("candidate_weight", 0.0)),
            started_at=float(data.get("started_at", 0.0)),
            production_arm=_arm_from_list(data.get("production_arm")),
            candidate_arm=_arm_from_list(data.get("candidate_arm")),
            decided=data.get("decided"),
            last=data.get("last"),
        )


def _arm_to_list(arm: ArmSummary) -> list[float]:
    return [arm.samples, arm.positives, arm.squared_error_sum, arm.squared_error_sq_sum]


def _arm_from_list(values: list[float] | None) -> ArmSummary:
    if not values:
        return ArmSummary()
    return ArmSummary(int(values[0]), int(values[1]), float(values[2]), float(values[3]))


def start(experiment: Experiment) -> AbState:
    return AbState(
        experiment=experiment.key(),
        production=experiment.production,
        candidate=experiment.candidate,
        candidate_weight=experiment.candidate_weight,
        started_at=experiment.started_at,
    )


def observe(
    state: AbState,
    experiment: Experiment | None,
    model_version: str,
    positive: bool,
    prediction: float,
    outcome_score: float,
    occurred_at: datetime,
) -> AbState:
    """Add one outcome to its arm; a new experiment (any weight change) starts from zero."""
    if experiment is None:
        return state if not state.experiment else AbState()
    if state.experiment != experiment.key():
        state = start(experiment)
    if occurred_at.timestamp() < state.started_at:
        return state
    squared_error = (prediction - outcome_score) ** 2
    if model_version == state.production:
        return replace(state, production_arm=state.production_arm.add(positive, squared_error))
    if model_version == state.candidate:
        return replace(state, candidate_arm=state.candidate_arm.add(positive, squared_error))
    return state


def look(
    state: AbState, alpha: float, min_samples: int
) -> tuple[AbState, SequentialDecision | None]:
    """One look at the test. Returns the decision to act on, once per experiment, else None."""
    if not state.experiment:
        return state, None
    decision = decide(state.production_arm, state.candidate_arm, alpha, min_samples)
    evidence = decision.evidence()
    if decision.verdict is Verdict.CONTINUE or state.decided is not None:
        return replace(state, last=evidence), None
    return replace(state, decided=decision.verdict.value, last=evidence), decision


def command_for(
    state: AbState, decision: SequentialDecision, model_type: str
) -> RegistryCommandIssued:
    """The registry command for a decision; its id is fixed by the experiment (resends are one)."""
    command_id = str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"relearn-abtest/{model_type}/{state.experiment}")
    )
    evidence = decision.evidence()
    if decision.verdict is Verdict.ROLLBACK:
        return RegistryCommandIssued(
            command_id=command_id,
            type=RegistryCommandType.ROLLBACK,
            model_type=model_type,
            version=state.candidate,
            reason=f"candidate worse than production on {decision.metric}",
            evidence=evidence,
        )
    weight = next_ramp_weight(state.candidate_weight)
    return RegistryCommandIssued(
        command_id=command_id,
        type=RegistryCommandType.PROMOTE,
        model_type=model_type,
        version=state.candidate,
        weights={state.candidate: weight, state.production: round(1.0 - weight, 10)},
        reason=f"candidate better than production on {decision.metric}; ramp to {weight:g}",
        evidence=evidence,
    )


def summary(state: AbState, model_type: str) -> dict[str, Any]:
    """What `/abtest/{type}` shows."""
    if not state.experiment:
        return {"model_type": model_type, "running": False}
    return {
        "model_type": model_type,
        "running": True,
        "baseline_version": state.production,
        "candidate_version": state.candidate,
        "candidate_weight": state.candidate_weight,
        "experiment": state.experiment,
        "baseline": {
            "samples": state.production_arm.samples,
            "positive_outcome_rate": state.production_arm.positive_rate,
            "mean_squared_error": state.production_arm.mean_squared_error,
        },
        "candidate": {
            "samples": state.candidate_arm.samples,
            "positive_outcome_rate": state.candidate_arm.positive_rate,
            "mean_squared_error": state.candidate_arm.mean_squared_error,
        },
        "decision": state.decided or "continue",
        "statistics": state.last,
    }
