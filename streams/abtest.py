"""The A/B test of a staging candidate as the worker runs it: which experiment the registry shows,
a decision of `streams.experiment` as a registry command, and what `/abtest/{type}` shows (pure).

The rule itself (cohorts by `served_at`, maturity on event time, the group-sequential test over
the whole ramp) is `streams.experiment`; this module only connects it to the registry's view and
to registry-commands.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from contracts.events import RegistryCommandIssued, RegistryCommandType
from streams.experiment import Decision, DecisionPlan, ExperimentState, Verdict, follow
from streams.registry_view import ModelTypeView


@dataclass(frozen=True)
class Live:
    """The two versions that carry traffic as the registry shows them, and since when."""

    production: str
    candidate: str
    weight: float  # the candidate's
    changed_at: float  # epoch seconds of the last weight change (the step's start)


def experiment_of(view: ModelTypeView | None) -> Live | None:
    """The running experiment of a model type: production and a candidate with traffic (a
    production left without traffic, forced by an operator, runs none)."""
    if view is None:
        return None
    cached = _LIVE.get(view.model_type)
    if cached is not None and cached[0] is view:
        return cached[1]  # the same view as the last sample's (views are replaced on change)
    live = _live(view)
    _LIVE[view.model_type] = (view, live)
    return live


# model type -> (the view last asked about, its experiment)
_LIVE: dict[str, tuple[ModelTypeView, Live | None]] = {}


def _live(view: ModelTypeView) -> Live | None:
    if view.production is None or view.candidate is None:
        return None
    if view.weights.get(view.production, 0.0) <= 0.0:
        return None
    changed_at = view.changed_at.timestamp() if view.changed_at is not None else 0.0
    weight = float(view.weights.get(view.candidate, 0.0))
    return Live(view.production, view.candidate, weight, changed_at)


def followed(
    state: ExperimentState | None, live: Live | None, plan: DecisionPlan
) -> ExperimentState | None:
    """The experiment after the registry's view: a new candidate starts one, a new weight its
    next step's cohort; without one running, the last is kept as it ended."""
    if live is None:
        return state
    return follow(state, live.production, live.candidate, live.weight, live.changed_at, plan)


def running(state: ExperimentState | None, live: Live | None) -> bool:
    """Whether `state` is the experiment on the versions the registry serves now."""
    return (
        state is not None
        and live is not None
        and (state.production, state.candidate) == (live.production, live.candidate)
    )


def command_for(
    state: ExperimentState, decision: Decision, model_type: str
) -> RegistryCommandIssued:
    """The registry command for a decision. Its id is fixed by the experiment, the verdict and
    the weight it leads to: a decision re-sent on replay is one command to the registry."""
    command_id = str(
        uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"relearn-abtest/{model_type}/{state.experiment_id}/"
            f"{decision.verdict.value}/{decision.weight:g}",
        )
    )
    common: dict[str, Any] = {
        "command_id": command_id,
        "model_type": model_type,
        "version": state.candidate,
        "reason": decision.reason,
        "evidence": decision.evidence,
    }
    if decision.verdict is Verdict.ROLLBACK:
        return RegistryCommandIssued(type=RegistryCommandType.ROLLBACK, **common)
    if decision.verdict is Verdict.KEEP_PRODUCTION:
        return RegistryCommandIssued(type=RegistryCommandType.KEEP_PRODUCTION, **common)
    weight = decision.weight
    return RegistryCommandIssued(
        type=RegistryCommandType.PROMOTE,
        weights={state.candidate: weight, state.production: round(1.0 - weight, 10)},
        **common,
    )


def _arm(matured: int, waiting: int, positives: float, squared_error: float) -> dict[str, Any]:
    return {
        "samples": matured + waiting,
        "matured": matured,
        "waiting": waiting,
        # over matured outcomes only: a waiting cohort is incomplete (fast positives first)
        "positive_outcome_rate": positives / matured if matured else None,
        "mean_squared_error": squared_error / matured if matured else None,
    }


def summary(
    state: ExperimentState | None,
    plan: DecisionPlan,
    model_type: str,
    missing_served_at: int,
    live: bool,
) -> dict[str, Any]:
    """What `/abtest/{type}` shows: the step, maturity per arm, the look, the boundaries, the
    remaining budget and the verdict with its evidence."""
    if state is None:
        return {"model_type": model_type, "running": False, "missing_served_at": missing_served_at}
    arms = {}
    for index, name in ((0, "candidate"), (1, "baseline")):
        matured_sums = [s.candidate if index == 0 else s.production for s in state.steps]
        waiting_sums = [pair[index] for pair in state.pending.values()]
        arms[name] = _arm(
            sum(s.outcomes for s in matured_sums),
            sum(s.outcomes for s in waiting_sums),
            sum(sum(s.y) for s in matured_sums),
            sum(sum(s.e) for s in matured_sums),
        )
    matured_candidate = arms["candidate"]["matured"]
    milestones = plan.milestones()
    next_look = next((m for m in milestones if m > matured_candidate), None)
    watermark = state.watermark(plan)
    ends_at = state.started_at + plan.max_duration_seconds
    last = state.last or {}
    verdict = state.verdict.value
    if state.verdict is Verdict.CONTINUE and state.requested_weight is not None:
        verdict = f"promote to {state.requested_weight:g} requested"
    return {
        "model_type": model_type,
        "running": live and state.verdict is Verdict.CONTINUE,
        "experiment": state.experiment_id,
        "baseline_version": state.production,
        "candidate_version": state.candidate,
        "candidate_weight": state.weight,
        "step": state.weight,
        "steps": [{"weight": s.weight, "started_at": s.started_at} for s in state.steps],
        "baseline": arms["baseline"],
        "candidate": arms["candidate"],
        "waiting": state.waiting,
        "late": state.late,
        "before_start": state.before_start,
        "missing_served_at": missing_served_at,
        "outcome_window_seconds": plan.outcome_window_seconds,
        "watermark": watermark if math.isfinite(watermark) else None,
        "look": state.looks_done,
        "looks_planned": len(milestones),
        "next_look_at": next_look,
        "boundaries": last.get("boundaries"),
        "remaining": {
            "candidate_outcomes": max(0, plan.max_candidate_outcomes - matured_candidate),
            "seconds": (
                max(0.0, ends_at - watermark)
                if math.isfinite(watermark)
                else plan.max_duration_seconds
            ),
        },
        # the latest the rule can end while outcomes keep arriving (event time ~ wall clock):
        # the maximum duration, then its last cohort's window and the watermark's allowance
        "started_at": state.started_at,
        "deadline": ends_at + plan.outcome_window_seconds + plan.allowance_seconds,
        "decision": verdict,
        "statistics": state.last,
    }
