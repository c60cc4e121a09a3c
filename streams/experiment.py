"""One candidate's whole experiment: matured cohorts per ramp step and the decision over the ramp (pure).

What counts. An outcome enters by its `served_at`, in the cohort of the ramp step that was live
then, and only once that cohort has matured: every prediction served in its slot has had its
full `outcome_window_seconds` by the watermark (the latest event time seen, minus an
allowance). Outcomes of a slot wait, as bucket sums, until then. Maturity follows event time,
never the wall clock, so a replay of the same events decides exactly as the first run did.
Arriving late (after its slot matured) or without `served_at`, an outcome is counted as such
and left out.

The decision is one group-sequential test over the candidate's whole ramp (0.1 -> 0.5 -> 1.0),
looked at when the matured candidate outcomes reach planned milestones (a doubling schedule up
to a declared maximum). At each look, on the steps' cohorts combined (see
streams/group_sequential.py):
- ROLLBACK when the positive rate is lower (Pocock boundary, alpha_rollback over the whole
  ramp) or the squared error is clearly worse than the non-inferiority margin (alpha_guardrail;
  tested on the log of the ratio of mean squared errors, whose tail over a few hundred skewed
  outcomes is close to normal, unlike the difference's);
- PROMOTE to the next step when the rate is higher and the squared error is shown not worse
  than the margin: 0.1 -> 0.5 at the looser alpha_expand (more exposure, not a verdict), and
  to 1.0 only at alpha_promote, so a false promotion to 1.0 is bounded by alpha_promote for the
  whole ramp, whatever happened at 0.1;
- KEEP_PRODUCTION at the last planned look or the maximum duration: every candidate ends.
Error rates over the whole ramp are therefore at most alpha_rollback + alpha_guardrail (false
rollback) and alpha_promote (false promotion to 1.0), reported in every decision's evidence.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from contracts.serving import RAMP
from streams.group_sequential import BucketSums, Comparison, compare, wang_tsiatis_boundaries


class Verdict(StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    PROMOTE = "promote"  # to the next ramp step
    KEEP_PRODUCTION = "keep_production"


@dataclass(frozen=True)
class DecisionPlan:
    """The declared design of every experiment: error budgets, margin, maximum, maturity."""

    alpha_rollback: float = 0.01
    alpha_guardrail: float = 0.001
    alpha_expand: float = 0.05
    alpha_promote: float = 0.0002
    alpha_non_inferiority: float = 0.05
    guardrail_margin: float = 0.15  # relative increase of the mean squared error tolerated
    first_look: int = 450  # matured candidate outcomes at the first look; then doubling
    max_candidate_outcomes: int = 57_600
    max_duration_seconds: float = 14 * 86_400.0
    outcome_window_seconds: float = 86_400.0
    slots_per_window: int = 24
    allowance_seconds: float = 300.0
    buckets: int = 64
    # Wang-Tsiatis delta: 0.5 Pocock, 0 O'Brien-Fleming; above 0.5 spends more alpha early
    # (a clearly worse candidate is rolled back within ~1,000 outcomes).
    rollback_shape: float = 0.6
    promote_shape: float = 0.5

    @property
    def slot_seconds(self) -> float:
        return self.outcome_window_seconds / self.slots_per_window

    def milestones(self) -> tuple[int, ...]:
        marks = []
        n = self.first_look
        while n < self.max_candidate_outcomes:
            marks.append(n)
            n *= 2
        marks.append(self.max_candidate_outcomes)
        return tuple(marks)

    def fractions(self) -> tuple[float, ...]:
        return tuple(m / self.max_candidate_outcomes for m in self.milestones())

    def boundary(self, which: str, look: int) -> float:
        alpha, shape = {
            "rollback": (self.alpha_rollback, self.rollback_shape),
            "guardrail": (self.alpha_guardrail, self.rollback_shape),
            "expand": (self.alpha_expand, self.promote_shape),
            "promote": (self.alpha_promote, self.promote_shape),
            "non_inferiority": (self.alpha_non_inferiority, self.promote_shape),
        }[which]
        return wang_tsiatis_boundaries(self.fractions(), alpha, shape)[look]


def bucket_of(experiment_id: str, subject_id: str, buckets: int) -> int:
    """A subject's variance bucket in one experiment (salted, so independent across candidates)."""
    digest = hashlib.blake2b(f"{experiment_id}\x00{subject_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


@dataclass
class Sums:
    """Mutable bucket sums of one arm (outcomes, positives, squared error): O(1) per outcome."""

    n: list[float]
    y: list[float]
    e: list[float]
    e2: float = 0.0

    @classmethod
    def empty(cls, buckets: int) -> Sums:
        return cls([0.0] * buckets, [0.0] * buckets, [0.0] * buckets)

    def add(self, bucket: int, positive: bool, squared_error: float) -> None:
        self.n[bucket] += 1.0
        self.y[bucket] += 1.0 if positive else 0.0
        self.e[bucket] += squared_error
        self.e2 += squared_error * squared_error

    def merge(self, other: Sums) -> None:
        for b in range(len(self.n)):
            self.n[b] += other.n[b]
            self.y[b] += other.y[b]
            self.e[b] += other.e[b]
        self.e2 += other.e2

    def frozen(self) -> BucketSums:
        return BucketSums(tuple(self.n), tuple(self.y), tuple(self.e), self.e2)

    @property
    def outcomes(self) -> int:
        return int(sum(self.n))

    def to_list(self) -> list[Any]:
        return [self.n, self.y, self.e, self.e2]

    @classmethod
    def from_list(cls, data: list[Any]) -> Sums:
        n, y, e, e2 = data
        return cls(list(map(float, n)), list(map(float, y)), list(map(float, e)), float(e2))


@dataclass
class Step:
    """One ramp step: its weight, when it went live (event time), its matured cohort."""

    weight: float
    started_at: float
    candidate: Sums
    production: Sums


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    weight: float  # the candidate's weight after the decision (0 on rollback / keep)
    reason: str
    evidence: dict[str, Any]


@dataclass
class ExperimentState:
    """Everything the rule keeps for one candidate: small, serializable, replay-safe."""

    experiment_id: str
    production: str
    candidate: str
    started_at: float
    steps: list[Step]
    pending: dict[str, tuple[Sums, Sums]] = field(default_factory=dict)  # "step:slot" -> (c, p)
    max_event_time: float = -math.inf
    looks_done: int = 0
    verdict: Verdict = Verdict.CONTINUE
    waiting: int = 0
    late: int = 0
    before_start: int = 0
    requested_weight: float | None = None  # a promotion to a step the registry has not applied
    last: dict[str, Any] | None = None

    @property
    def weight(self) -> float:
        return self.steps[-1].weight

    def watermark(self, plan: DecisionPlan) -> float:
        return self.max_event_time - plan.allowance_seconds

    def matured(self) -> tuple[int, int]:
        return (
            sum(s.candidate.outcomes for s in self.steps),
            sum(s.production.outcomes for s in self.steps),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "production": self.production,
            "candidate": self.candidate,
            "started_at": self.started_at,
            "steps": [
                [s.weight, s.started_at, s.candidate.to_list(), s.production.to_list()]
                for s in self.steps
            ],
            "pending": {k: [c.to_list(), p.to_list()] for k, (c, p) in self.pending.items()},
            "max_event_time": self.max_event_time if math.isfinite(self.max_event_time) else None,
            "looks_done": self.looks_done,
            "verdict": self.verdict.value,
            "waiting": self.waiting,
            "late": self.late,
            "before_start": self.before_start,
            "requested_weight": self.requested_weight,
            "last": self.last,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentState:
        met = data.get("max_event_time")
        return cls(
            experiment_id=data["experiment_id"],
            production=data["production"],
            candidate=data["candidate"],
            started_at=float(data["started_at"]),
            steps=[
                Step(float(w), float(t), Sums.from_list(c), Sums.from_list(p))
                for w, t, c, p in data["steps"]
            ],
            pending={
                k: (Sums.from_list(c), Sums.from_list(p)) for k, (c, p) in data["pending"].items()
            },
            max_event_time=-math.inf if met is None else float(met),
            looks_done=int(data["looks_done"]),
            verdict=Verdict(data["verdict"]),
            waiting=int(data["waiting"]),
            late=int(data["late"]),
            before_start=int(data["before_start"]),
            requested_weight=data.get("requested_weight"),
            last=data.get("last"),
        )


def start(
    experiment_id: str,
    production: str,
    candidate: str,
    weight: float,
    at: float,
    plan: DecisionPlan,
) -> ExperimentState:
    """A new candidate's experiment; `experiment_id` is also its routing and bucket salt."""
    step = Step(weight, at, Sums.empty(plan.buckets), Sums.empty(plan.buckets))
    return ExperimentState(experiment_id, production, candidate, at, [step])


def start_step(state: ExperimentState, weight: float, at: float, plan: DecisionPlan) -> None:
    """The ramp moved (the registry applied a promotion): outcomes served from `at` on are a new cohort."""
    state.requested_weight = None
    if weight != state.weight:
        state.steps.append(Step(weight, at, Sums.empty(plan.buckets), Sums.empty(plan.buckets)))


def follow(
    state: ExperimentState | None,
    production: str | None,
    candidate: str | None,
    weight: float,
    changed_at: float,
    plan: DecisionPlan,
) -> ExperimentState | None:
    """The experiment as the registry shows it: a new candidate with traffic starts one, a new
    weight for the same candidate starts its next step's cohort. Without a candidate the last
    experiment is kept as it ended (its verdict and evidence stay readable)."""
    if production is None or candidate is None or weight <= 0.0:
        return state
    if state is None or (state.production, state.candidate) != (production, candidate):
        return start(f"{production},{candidate}", production, candidate, weight, changed_at, plan)
    if state.verdict is Verdict.CONTINUE and weight < 1.0:
        start_step(state, weight, changed_at, plan)
    return state


def _step_at(state: ExperimentState, served_at: float) -> int | None:
    index = None
    for i, step in enumerate(state.steps):
        if step.started_at <= served_at:
            index = i
    return index


def _slot_matures_at(slot: int, plan: DecisionPlan) -> float:
    return (slot + 1) * plan.slot_seconds + plan.outcome_window_seconds


def observe(
    state: ExperimentState,
    plan: DecisionPlan,
    *,
    version: str,
    subject_id: str,
    served_at: float,
    occurred_at: float,
    positive: bool,
    squared_error: float,
) -> None:
    """Hold one outcome in its (step, slot) until the slot matures; O(1) apart from the step lookup."""
    state.max_event_time = max(state.max_event_time, occurred_at)
    if state.verdict is not Verdict.CONTINUE:
        return
    if version not in (state.candidate, state.production):
        return
    step = _step_at(state, served_at)
    if step is None:
        state.before_start += 1
        return
    slot = math.floor(served_at / plan.slot_seconds)
    if _slot_matures_at(slot, plan) <= state.watermark(plan):
        state.late += 1
        return
    key = f"{step}:{slot}"
    if key not in state.pending:
        state.pending[key] = (Sums.empty(plan.buckets), Sums.empty(plan.buckets))
    arm = 0 if version == state.candidate else 1
    bucket = bucket_of(state.experiment_id, subject_id, plan.buckets)
    state.pending[key][arm].add(bucket, positive, squared_error)
    state.waiting += 1


def next_due(state: ExperimentState, plan: DecisionPlan) -> float:
    """The watermark at which `advance` can next change something (a slot maturing, the maximum
    duration): before it, and with no new waiting slot, calling it is a no-op."""
    ends = state.started_at + plan.max_duration_seconds
    slots = (int(key.split(":")[1]) for key in state.pending)
    return (
        min((_slot_matures_at(slot, plan) for slot in slots), default=ends)
        if state.pending
        else ends
    )


def advance(state: ExperimentState, plan: DecisionPlan) -> Decision | None:
    """Move matured slots into their cohorts and look if a milestone was reached."""
    if state.verdict is not Verdict.CONTINUE:
        return None
    watermark = state.watermark(plan)
    for key in sorted(state.pending):
        step, slot = (int(part) for part in key.split(":"))
        if _slot_matures_at(slot, plan) <= watermark:
            candidate, production = state.pending.pop(key)
            state.steps[step].candidate.merge(candidate)
            state.steps[step].production.merge(production)
            state.waiting -= candidate.outcomes + production.outcomes
    milestones = plan.milestones()
    matured_candidate, _ = state.matured()
    reached = sum(1 for m in milestones if matured_candidate >= m)
    out_of_time = watermark >= state.started_at + plan.max_duration_seconds
    if reached > state.looks_done:
        state.looks_done = reached
        return look(state, plan, reached - 1, final=reached == len(milestones) or out_of_time)
    if out_of_time:
        # An extra, earlier last look: with the next planned look's boundary it only lowers
        # the crossing probability.
        index = min(state.looks_done, len(milestones) - 1)
        return look(state, plan, index, final=True)
    return None


def _comparisons(state: ExperimentState, plan: DecisionPlan) -> tuple[Comparison, Comparison]:
    steps = [(s.candidate.frozen(), s.production.frozen()) for s in state.steps]
    return compare(steps, "rate"), compare(steps, "log_squared_error", plan.guardrail_margin)


def look(state: ExperimentState, plan: DecisionPlan, index: int, final: bool) -> Decision | None:
    """One look at boundary `index`; sets the state's verdict when it decides."""
    rate, guard = _comparisons(state, plan)
    bounds = {
        name: plan.boundary(name, index)
        for name in ("rollback", "guardrail", "expand", "promote", "non_inferiority")
    }
    weight = state.weight
    next_weight = next(step for step in RAMP if step > weight + 1e-9) if weight < 1.0 else 1.0
    promote_bound = bounds["promote"] if next_weight >= 1.0 else bounds["expand"]
    non_inferior = guard.z <= -bounds["non_inferiority"]
    if rate.z <= -bounds["rollback"]:
        verdict, reason = Verdict.ROLLBACK, "positive outcome rate lower than production"
    elif guard.z >= bounds["guardrail"]:
        verdict, reason = (
            Verdict.ROLLBACK,
            f"squared error worse than production by more than {plan.guardrail_margin:.0%}",
        )
    elif rate.z >= promote_bound and non_inferior and state.requested_weight is None:
        verdict, reason = (
            Verdict.PROMOTE,
            f"positive outcome rate higher, squared error within {plan.guardrail_margin:.0%}; "
            f"ramp to {next_weight:g}",
        )
    elif final:
        verdict, reason = Verdict.KEEP_PRODUCTION, "maximum reached without a decision"
    else:
        verdict, reason = Verdict.CONTINUE, ""
    matured_candidate, matured_production = state.matured()
    evidence = {
        "verdict": verdict.value,
        "look": index + 1,
        "looks_planned": len(plan.milestones()),
        "step_weight": weight,
        "matured_candidate": matured_candidate,
        "matured_production": matured_production,
        "waiting": state.waiting,
        "late": state.late,
        "rate_difference": rate.difference,
        "rate_z": rate.z,
        "production_rate": rate.production_mean,
        "candidate_rate": rate.candidate_mean,
        "squared_error_margin": plan.guardrail_margin,
        "squared_error_z": guard.z,
        "production_mse": guard.production_mean,
        "candidate_mse": guard.candidate_mean,
        "boundaries": bounds,
        "max_candidate_outcomes": plan.max_candidate_outcomes,
        "max_duration_seconds": plan.max_duration_seconds,
        "false_rollback_bound": plan.alpha_rollback + plan.alpha_guardrail,
        "false_promotion_bound": plan.alpha_promote,
        "test": "group-sequential over the ramp, subject buckets, delta method, pooled null",
    }
    state.last = evidence
    if verdict is Verdict.CONTINUE:
        return None
    if verdict is Verdict.PROMOTE and next_weight < 1.0:
        # The experiment goes on at the next step; the registry's change starts its cohort.
        state.requested_weight = next_weight
        return Decision(verdict, next_weight, reason, evidence)
    state.verdict = verdict
    new_weight = next_weight if verdict is Verdict.PROMOTE else 0.0
    return Decision(verdict, new_weight, reason, evidence)
