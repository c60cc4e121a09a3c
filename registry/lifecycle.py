"""The version state machine and its traffic rules: planners from state to a change (pure).

Every operation (register, reject, promote, rollback, set weights) is a function of the model
type's current versions that returns a `Plan`: rows to insert, status/weight changes, and the
registry events describing them, each carrying the full weight map after the change. Stores
apply a plan in one transaction; they never re-implement these rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.events import ModelDeployed, RegistryEventOccurred, RegistryEventType
from contracts.serving import INITIAL_CANDIDATE_WEIGHT, MAX_CANDIDATE_WEIGHT, Status
from contracts.versions import parse_version
from registry.domain import ModelVersion
from registry.errors import (
    IllegalTransition,
    InvalidWeights,
    TrafficInvariantViolated,
    UnknownVersion,
)
from registry.versioning import assign_version

WEIGHT_TOLERANCE = 1e-6

# Which status may become which; anything else is refused.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # staging -> archived: its A/B test ended without a verdict (keep_production)
    Status.STAGING: frozenset(
        {Status.STAGING, Status.PRODUCTION, Status.ROLLED_BACK, Status.ARCHIVED}
    ),
    Status.PRODUCTION: frozenset({Status.ARCHIVED, Status.ROLLED_BACK}),
    Status.ARCHIVED: frozenset({Status.PRODUCTION}),
    Status.ROLLED_BACK: frozenset(),
}
SERVING = frozenset({Status.STAGING, Status.PRODUCTION})


@dataclass(frozen=True)
class Plan:
    """What one operation changes: a new row, new (status, weight) of existing rows, the events."""

    model_type: str
    insert: ModelVersion | None = None
    changes: Mapping[str, tuple[Status, float]] = field(default_factory=dict)
    events: tuple[RegistryEventOccurred, ...] = ()
    outcome: str = "applied"
    forced: bool = False  # an operator overrode the traffic invariants explicitly

    def apply_to(self, state: Sequence[ModelVersion]) -> list[ModelVersion]:
        after = [
            v.with_state(*self.changes[v.version]) if v.version in self.changes else v
            for v in state
        ]
        if self.insert is not None:
            after.append(self.insert)
        return after


def check_traffic(
    state_after: Sequence[ModelVersion],
    model_type: str,
    max_candidate_weight: float = MAX_CANDIDATE_WEIGHT,
) -> None:
    """The traffic invariants every change must leave behind (checked inside its transaction):
    one candidate at a time, production never starved.

    - at most one `staging` version with traffic, so at most two live versions;
    - that candidate holds at most `max_candidate_weight`, production holds the rest
      (at least 1 - the candidate's weight);
    - the live weights sum to 1.
    """
    live = [v for v in state_after if v.weight > 0]
    candidates = [v for v in live if v.status is Status.STAGING]
    if len(candidates) > 1:
        names = ", ".join(v.version for v in candidates)
        raise TrafficInvariantViolated(
            f"{model_type} would have {len(candidates)} staging versions with traffic ({names}):"
            " one candidate at a time - roll back or promote the one under test first"
        )
    if len(live) > 2:
        raise TrafficInvariantViolated(
            f"{model_type} would serve {len(live)} versions; at most production and one candidate"
        )
    production = production_of(state_after)
    if candidates and production is not None:
        candidate = candidates[0]
        if candidate.weight > max_candidate_weight + WEIGHT_TOLERANCE:
            raise TrafficInvariantViolated(
                f"{model_type} {candidate.version} is staging; it may hold at most "
                f"{max_candidate_weight:g} of the traffic (production keeps the rest), not "
                f"{candidate.weight:g} - promote it instead"
            )
        if production.weight < 1.0 - candidate.weight - WEIGHT_TOLERANCE:
            raise TrafficInvariantViolated(
                f"{model_type} production {production.version} would hold {production.weight:g},"
                f" less than 1 - {candidate.weight:g}"
            )
    if live and abs(math.fsum(v.weight for v in live) - 1.0) > WEIGHT_TOLERANCE:
        raise TrafficInvariantViolated(f"{model_type} weights would not sum to 1")


def check_transition(version: ModelVersion, target: Status) -> None:
    if target not in TRANSITIONS[version.status]:
        raise IllegalTransition(
            f"{version.model_type} {version.version} is {version.status.value}; "
            f"it cannot become {target.value}"
        )


def weights_of(state: Sequence[ModelVersion]) -> dict[str, float]:
    """The weight map clients route by: versions with positive weight."""
    return {v.version: v.weight for v in state if v.weight > 0}


def production_of(state: Sequence[ModelVersion]) -> ModelVersion | None:
    return next((v for v in state if v.status is Status.PRODUCTION), None)


def find(state: Sequence[ModelVersion], model_type: str, version: str) -> ModelVersion:
    for v in state:
        if v.version == version:
            return v
    raise UnknownVersion(f"{model_type} has no version {version}")


def validate_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Finite, non-negative, summing to 1 (within 1e-6); returns them rounded to 6 decimals."""
    if not weights:
        raise InvalidWeights("weights must name at least one version")
    for version, weight in weights.items():
        if not isinstance(weight, int | float) or not 0 <= weight <= 1 + WEIGHT_TOLERANCE:
            raise InvalidWeights(f"weight of {version} must be a number in [0, 1], got {weight!r}")
    rounded = {version: round(float(weight), 6) for version, weight in weights.items()}
    # Checked as stored (rounded): a sum off by rounding would refuse every later change
    # derived from it (`check_traffic`), a forced one included.
    total = math.fsum(rounded.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise InvalidWeights(f"weights must sum to 1, they sum to {total:.6f}")
    return rounded


def _event(
    type_: RegistryEventType,
    state_after: Sequence[ModelVersion],
    model_type: str,
    version: str | None,
    status: Status | None,
    reason: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> RegistryEventOccurred:
    return RegistryEventOccurred(
        type=type_,
        model_type=model_type,
        version=version,
        status=status,
        weights=weights_of(state_after),
        reason=reason,
        occurred_at=now,
        details=details,
    )


DUPLICATE_COMMAND = "duplicate_command"


def plan_registration(
    state: Sequence[ModelVersion],
    deployment: ModelDeployed,
    now: datetime,
    candidate_weight: float = INITIAL_CANDIDATE_WEIGHT,
) -> Plan:
    """A new version: the hint when free else the next minor; staging at 0.1 taken from
    production (as much as production has), or production at 1.0 when there is none yet."""
    model_type = deployment.model_type
    if deployment.command_id is not None and any(
        v.command_id == deployment.command_id for v in state
    ):
        # One retrain command, one version: a second deployment for it (a zombie trainer that
        # finished after its command moved to another worker) changes nothing.
        return Plan(model_type, outcome=DUPLICATE_COMMAND)
    version = assign_version((v.version for v in state), deployment.version_hint)
    production = production_of(state)
    changes: dict[str, tuple[Status, float]] = {}
    # One candidate at a time: a deployment arriving while one is under test replaces it (it
    # is rolled back, its traffic returns to production), never stacks on it.
    replaced = [
        v for v in state if v.status is Status.STAGING and v.weight > 0 and production is not None
    ]
    if production is None:
        status, weight = Status.PRODUCTION, 1.0
        changes = {v.version: (v.status, 0.0) for v in state if v.weight > 0}
    else:
        status = Status.STAGING
        for old in replaced:
            changes[old.version] = (Status.ROLLED_BACK, 0.0)
        production_weight = production.weight + math.fsum(v.weight for v in replaced)
        weight = round(min(candidate_weight, production_weight), 6)
        changes[production.version] = (production.status, round(production_weight - weight, 6))
    new = ModelVersion(
        model_type=model_type,
        version=version,
        status=status,
        weight=weight,
        sha256=deployment.sha256,
        artifact_uri=deployment.artifact_uri,
        size_bytes=deployment.size_bytes,
        created_at=now,
        metrics=deployment.metrics.model_dump(mode="json"),
        baseline_metrics=deployment.baseline_metrics,
        lineage=deployment.lineage.model_dump(mode="json") if deployment.lineage else None,
        deployment_id=deployment.deployment_id,
        command_id=deployment.command_id,
        was_production=status is Status.PRODUCTION,
    )
    plan = Plan(model_type, insert=new, changes=changes)
    after = plan.apply_to(state)
    reason = "first version" if production is None else "new candidate"
    details = {
        "deployment_id": deployment.deployment_id,
        "sha256": deployment.sha256,
        "command_id": deployment.command_id,  # the retrain this answers (streams waits on it)
    }
    events = [
        _event(
            RegistryEventType.VERSION_ROLLED_BACK,
            after,
            model_type,
            old.version,
            Status.ROLLED_BACK,
            f"replaced by {version} before its test decided",
            now,
        )
        for old in replaced
    ]
    events.append(
        _event(
            RegistryEventType.VERSION_REGISTERED,
            after,
            model_type,
            version,
            status,
            reason,
            now,
            details,
        )
    )
    if weight > 0:
        events.append(
            _event(
                RegistryEventType.TRAFFIC_CHANGED, after, model_type, version, status, reason, now
            )
        )
    return Plan(model_type, insert=new, changes=changes, events=tuple(events))


def plan_rejection(
    state: Sequence[ModelVersion],
    model_type: str,
    deployment_id: str,
    code: str,
    detail: str,
    now: datetime,
    command_id: str | None = None,
) -> Plan:
    """No change, one `artifact_rejected` event saying why."""
    event = _event(
        RegistryEventType.ARTIFACT_REJECTED,
        state,
        model_type,
        None,
        None,
        code,
        now,
        {"deployment_id": deployment_id, "detail": detail, "command_id": command_id},
    )
    return Plan(model_type, events=(event,), outcome="rejected")


def plan_promote(
    state: Sequence[ModelVersion],
    model_type: str,
    version: str,
    weights: Mapping[str, float] | None,
    reason: str,
    now: datetime,
) -> Plan:
    """Weights None or giving `version` 1.0: it becomes production at 1.0 and the previous
    production is archived. Weights giving it less: a ramp step, it stays staging at that weight."""
    target = find(state, model_type, version)
    if weights is not None:
        weights = validate_weights(weights)
        full = abs(weights.get(version, 0.0) - 1.0) <= WEIGHT_TOLERANCE
    else:
        full = True
    if not full:
        if target.status is not Status.STAGING:
            raise IllegalTransition(
                f"{model_type} {version} is {target.status.value}; only a staging version ramps"
            )
        if weights is not None and weights.get(version, 0.0) <= 0:
            raise InvalidWeights(f"a promotion must give {version} a positive weight")
        plan = plan_set_weights(state, model_type, weights or {}, reason, now)
        return Plan(
            model_type,
            changes=plan.changes,
            events=tuple(
                e.model_copy(update={"version": version, "status": Status.STAGING})
                for e in plan.events
            ),
        )
    if target.status is Status.PRODUCTION:
        raise IllegalTransition(f"{model_type} {version} is already production")
    check_transition(target, Status.PRODUCTION)
    changes: dict[str, tuple[Status, float]] = {}
    previous = production_of(state)
    for v in state:
        if v.version == version:
            changes[v.version] = (Status.PRODUCTION, 1.0)
        elif previous is not None and v.version == previous.version:
            changes[v.version] = (Status.ARCHIVED, 0.0)
        elif v.weight != 0:
            changes[v.version] = (v.status, 0.0)
    after = Plan(model_type, changes=changes).apply_to(state)
    events = [
        _event(
            RegistryEventType.VERSION_PROMOTED,
            after,
            model_type,
            version,
            Status.PRODUCTION,
            reason,
            now,
        )
    ]
    if previous is not None:
        events.append(
            _event(
                RegistryEventType.VERSION_ARCHIVED,
                after,
                model_type,
                previous.version,
                Status.ARCHIVED,
                f"superseded by {version}",
                now,
            )
        )
    return Plan(model_type, changes=changes, events=tuple(events))


def plan_rollback(
    state: Sequence[ModelVersion], model_type: str, version: str, reason: str, now: datetime
) -> Plan:
    """A staging version goes to rolled_back at 0 and its weight returns to production. Rolling
    back production restores, as production with its weight, the latest archived version older
    than it that has been production."""
    target = find(state, model_type, version)
    check_transition(target, Status.ROLLED_BACK)
    changes: dict[str, tuple[Status, float]] = {version: (Status.ROLLED_BACK, 0.0)}
    events_extra: list[tuple[str, Status, RegistryEventType]] = []
    if target.status is Status.STAGING:
        production = production_of(state)
        if production is None:
            raise IllegalTransition(f"{model_type} has no production version to take the traffic")
        changes[production.version] = (
            Status.PRODUCTION,
            round(production.weight + target.weight, 6),
        )
    else:
        # Only a version that served as production: an archived candidate whose test ended
        # without a verdict (keep_production) never did, whether older or newer than the target.
        target_order = parse_version(version)
        archived = [
            v
            for v in state
            if v.status is Status.ARCHIVED
            and v.was_production
            and parse_version(v.version) < target_order
        ]
        if not archived:
            raise IllegalTransition(
                f"{model_type} {version} is production and there is no earlier version to return to"
            )
        restored = max(archived, key=lambda v: parse_version(v.version))
        changes[restored.version] = (Status.PRODUCTION, round(restored.weight + target.weight, 6))
        events_extra.append(
            (restored.version, Status.PRODUCTION, RegistryEventType.VERSION_PROMOTED)
        )
    after = Plan(model_type, changes=changes).apply_to(state)
    events = [
        _event(
            RegistryEventType.VERSION_ROLLED_BACK,
            after,
            model_type,
            version,
            Status.ROLLED_BACK,
            reason,
            now,
        )
    ]
    for restored_version, status, type_ in events_extra:
        events.append(
            _event(
                type_,
                after,
                model_type,
                restored_version,
                status,
                f"restored by rollback of {version}",
                now,
            )
        )
    return Plan(model_type, changes=changes, events=tuple(events))


def plan_keep_production(
    state: Sequence[ModelVersion], model_type: str, version: str, reason: str, now: datetime
) -> Plan:
    """A staging candidate whose test ended without a verdict: archived at 0, its weight back to
    production, which is otherwise unchanged."""
    target = find(state, model_type, version)
    if target.status is not Status.STAGING:
        raise IllegalTransition(
            f"{model_type} {version} is {target.status.value}; only a staging candidate is kept out"
        )
    production = production_of(state)
    if production is None:
        raise IllegalTransition(f"{model_type} has no production version to take the traffic")
    changes = {
        version: (Status.ARCHIVED, 0.0),
        production.version: (Status.PRODUCTION, round(production.weight + target.weight, 6)),
    }
    after = Plan(model_type, changes=changes).apply_to(state)
    event = _event(
        RegistryEventType.VERSION_ARCHIVED,
        after,
        model_type,
        version,
        Status.ARCHIVED,
        reason,
        now,
    )
    return Plan(model_type, changes=changes, events=(event,))


def plan_set_weights(
    state: Sequence[ModelVersion],
    model_type: str,
    weights: Mapping[str, float],
    reason: str,
    now: datetime,
    forced: bool = False,
) -> Plan:
    """The full weight map: named versions get their weight, every other version 0.
    `forced`: an operator's explicit override of the traffic invariants (`check_traffic`)."""
    weights = validate_weights(weights)
    by_version = {v.version: v for v in state}
    for version, weight in weights.items():
        current = by_version.get(version)
        if current is None:
            raise UnknownVersion(f"{model_type} has no version {version}")
        if weight > 0 and current.status not in SERVING:
            raise InvalidWeights(
                f"{model_type} {version} is {current.status.value}; it cannot take traffic"
            )
    changes = {
        v.version: (v.status, weights.get(v.version, 0.0))
        for v in state
        if weights.get(v.version, 0.0) != v.weight
    }
    after = Plan(model_type, changes=changes).apply_to(state)
    event = _event(RegistryEventType.TRAFFIC_CHANGED, after, model_type, None, None, reason, now)
    return Plan(model_type, changes=changes, events=(event,), forced=forced)
