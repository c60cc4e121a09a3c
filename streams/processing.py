"""What the worker does with one message, over mutable mappings (its tables in production).

Every state change is idempotent: each stored value remembers, per source partition, the last
offset it applied, so a message read again after a crash or a rebalance changes nothing twice.
A replayed message re-writes the values it touched (healing a changelog write lost in the crash)
and re-sends the commands it emitted, with the same command ids.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from contracts import fast_paths
from contracts.events import (
    RetrainReason,
    RetrainRequested,
    TrainingSampleForwarded,
    forwarded_fields,
    forwarded_json,
    to_json,
)
from contracts.model_types import ModelTypeCatalog
from contracts.validation import MAX_MESSAGE_BYTES, OutcomeRejected, validate_outcome
from streams import abtest, rules
from streams import experiment as ab_rule
from streams.registry_view import ModelTypeView
from streams.values import DayPerformance, FirstSeen, RejectionCount

log = logging.getLogger(__name__)

SOURCE_PARTITION_HEADER = "source.partition"
SOURCE_OFFSET_HEADER = "source.offset"


class FirstSightings(Protocol):
    """event_id -> where first seen: a dict in tests, RocksDB in the worker."""

    def get(self, event_id: str) -> FirstSeen | None: ...

    def __setitem__(self, event_id: str, first_seen: FirstSeen) -> None: ...


class StreamsError(Exception):
    """Root of streams' errors."""


class MalformedSample(StreamsError):
    """A record on training-samples that is not a sample: poison for the counting agent."""


def parse_sample(value: bytes | None) -> dict[str, Any]:
    """The sample's fields the hop reads (`day`: occurred_at's UTC date), or MalformedSample
    with the reason."""
    if value is not None and (sample := fast_paths.training_sample(value)) is not None:
        return sample
    return _parse_sample_with_pydantic(value)


def _parse_sample_with_pydantic(value: bytes | None) -> dict[str, Any]:
    try:
        sample = TrainingSampleForwarded.model_validate_json(value or b"")
    except ValidationError as exc:
        raise MalformedSample(str(exc.errors(include_url=False)[0]["msg"])) from None
    return {
        "event_id": sample.event_id,
        "model_type": sample.model_type,
        "model_version": sample.model_version,
        "prediction": sample.prediction,
        "outcome_score": sample.outcome_score,
        "positive_outcome": sample.positive_outcome,
        "day": sample.occurred_at.date().isoformat(),
        "occurred_ts": sample.occurred_at.timestamp(),
        "served_ts": sample.served_at.timestamp() if sample.served_at is not None else None,
        "subject_id": sample.subject_id,
    }


# Commands remembered per model type for re-sending on replay (more than follow one commit).
REMEMBERED_COMMANDS = 4


class Output:
    """Which topic an emitted command goes to."""

    RETRAIN = "retrain"
    REGISTRY = "registry"


@dataclass(frozen=True)
class Emitted:
    output: str
    key: str
    value: bytes


@dataclass(frozen=True)
class OutcomeResult:
    """What to do after one outcome event: forward it, dead-letter it, or nothing (duplicate)."""

    forward: bytes | None = None
    model_type: str | None = None
    rejected: OutcomeRejected | None = None
    duplicate: bool = False


def forwardable_outcome(
    raw: bytes | None, catalog: ModelTypeCatalog, arrived_at: datetime
) -> dict[str, Any]:
    """The training sample's fields (`forwarded_fields`) of a valid outcome event, or
    OutcomeRejected with the reason code (`validate_outcome`'s verdict either way)."""
    if raw is not None and len(raw) <= MAX_MESSAGE_BYTES:
        fields = fast_paths.forwardable_outcome(raw, catalog, arrived_at)
        if fields is not None:
            return fields
    event = validate_outcome(raw, catalog, arrived_at)  # anything but the common shape
    return forwarded_fields(event, str(event.event_id))


def handle_outcome(
    raw: bytes | None,
    partition: int,
    offset: int,
    seen: FirstSightings,
    rejections: MutableMapping[str, RejectionCount],
    catalog: ModelTypeCatalog,
    arrived_at: datetime,
) -> OutcomeResult:
    """Validate, de-duplicate and prepare the training sample of one outcome event.

    `arrived_at` is the clock `future_timestamp` is judged by (`rules.arrival_time`).
    """
    try:
        fields = forwardable_outcome(raw, catalog, arrived_at)
    except OutcomeRejected as rejected:
        count_rejection(rejections, rejected.reason.value, partition, offset)
        return OutcomeResult(rejected=rejected)
    event_id, model_type = fields["event_id"], fields["model_type"]
    sighting = rules.classify_sighting(seen.get(event_id), partition, offset)
    if sighting is rules.Sighting.DUPLICATE:
        return OutcomeResult(duplicate=True, model_type=model_type)
    # (re-)written on replay too: heals a lost changelog write
    seen[event_id] = FirstSeen(partition, offset)
    return OutcomeResult(forward=forwarded_json(fields), model_type=model_type)


def count_rejection(
    rejections: MutableMapping[str, RejectionCount], reason: str, partition: int, offset: int
) -> None:
    key = f"{reason}@{partition}"
    rejections[key] = (rejections.get(key) or RejectionCount()).counted(offset)


def rejection_counts(rejections: Mapping[str, RejectionCount]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for key, value in rejections.items():
        reason = key.rsplit("@", 1)[0]
        totals[reason] = totals.get(reason, 0) + value.count
    return totals


# ---------------------------------------------------------------------------------------------
# Per model type: the retrain counter, the A/B test, and what they emitted.


@dataclass
class ModelTypeState:
    counter: rules.RetrainCounter = field(default_factory=rules.RetrainCounter)
    # The current (or last) candidate's experiment. Changed in place by each sample, only once
    # the sample's offset is known not to be applied yet (so a replay never adds twice).
    experiment: ab_rule.ExperimentState | None = None
    # Outcomes of the experiment's versions without served_at: never in the test, counted.
    missing_served_at: int = 0
    # The plan the experiment is decided with (the view shows its budget and window).
    plan: ab_rule.DecisionPlan | None = None
    # Whether the registry still served the experiment's versions at the last sample.
    running: bool = False
    # The watermark from which the experiment can next advance (not stored: -inf advances once).
    next_due: float = field(default=-math.inf, compare=False)
    applied: dict[str, int] = field(default_factory=dict)
    emitted: list[dict[str, Any]] = field(default_factory=list)
    # Every sample counted, which the model type's daily performance rows also hold: the views
    # show this state only once they have read rows that add up to it. None in a state written
    # before the field existed (its next sample sets it from the rows).
    samples: int | None = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "counter": self.counter.to_dict(),
            "experiment": self.experiment.to_dict() if self.experiment is not None else None,
            "missing_served_at": self.missing_served_at,
            "plan": dataclasses.asdict(self.plan) if self.plan is not None else None,
            "running": self.running,
            "applied": self.applied,
            "emitted": self.emitted,
            "samples": self.samples,
        }

    @classmethod
    def load(cls, stored: ModelTypeState | Mapping[str, Any] | None) -> ModelTypeState:
        """A state to change: a copy of a stored one (its experiment shared, see above), or parsed."""
        if isinstance(stored, ModelTypeState):
            # `replace(stored)` in effect (every field is an init field, no __post_init__), at a
            # quarter of its cost: this runs for every sample.
            state = cls.__new__(cls)
            state.__dict__.update(stored.__dict__)
            return state
        return cls.from_dict(stored)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ModelTypeState:
        if not data:
            return cls()
        stored_experiment = data.get("experiment")  # (a state of the old rule has "ab" instead)
        return cls(
            counter=rules.RetrainCounter.from_dict(data["counter"]),
            experiment=(
                ab_rule.ExperimentState.from_dict(stored_experiment) if stored_experiment else None
            ),
            missing_served_at=int(data.get("missing_served_at") or 0),
            plan=_plan_from(data.get("plan")),
            running=bool(data.get("running")),
            applied=dict(data.get("applied") or {}),
            emitted=list(data.get("emitted") or []),
            samples=data.get("samples"),
        )

    def remember(self, source: str, offset: int, emitted: Emitted) -> None:
        record = {"source": source, "offset": offset, "output": emitted.output}
        record["value"] = emitted.value.decode()
        self.emitted = [*self.emitted, record][-REMEMBERED_COMMANDS:]

    def emitted_at(self, source: str, offset: int) -> list[Emitted]:
        return [
            Emitted(record["output"], self_key(record), record["value"].encode())
            for record in self.emitted
            if record["source"] == source and record["offset"] == offset
        ]


def _plan_from(data: Mapping[str, Any] | None) -> ab_rule.DecisionPlan | None:
    if not data:
        return None
    known = {f.name for f in dataclasses.fields(ab_rule.DecisionPlan)}
    return ab_rule.DecisionPlan(**{k: v for k, v in data.items() if k in known})


def self_key(record: Mapping[str, Any]) -> str:
    return str(orjson.loads(record["value"])["model_type"])


@dataclass(frozen=True)
class StreamRules:
    """The settings the per-model-type rules need."""

    retrain_sample_threshold: int
    retrain_max_age_seconds: float
    retrain_pending_timeout_seconds: float = rules.DEFAULT_PENDING_TIMEOUT_SECONDS
    # The A/B decision's plan; each model type's `outcome_window_seconds` replaces its window.
    decision_plan: ab_rule.DecisionPlan = field(default_factory=ab_rule.DecisionPlan)
    outcome_windows: Mapping[str, float] = field(default_factory=dict)
    _plans: dict[str, ab_rule.DecisionPlan] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def plan_for(self, model_type: str) -> ab_rule.DecisionPlan:
        plan = self._plans.get(model_type)
        if plan is None:
            window = self.outcome_windows.get(model_type)
            plan = self.decision_plan
            if window is not None:
                plan = replace(plan, outcome_window_seconds=window)
            self._plans[model_type] = plan
        return plan


def _retrain_command(
    counter: rules.RetrainCounter,
    model_type: str,
    reason: RetrainReason,
    view: ModelTypeView | None,
    now: float,
    threshold: int,
) -> Emitted:
    command = RetrainRequested(
        command_id=rules.command_id(counter),
        model_type=model_type,
        reason=reason,
        new_samples=counter.new_samples,
        requested_at=datetime.fromtimestamp(now, UTC),
        baseline_version=view.production if view else None,
        held_crossings=rules.held_crossings(counter, threshold),
    )
    return Emitted(Output.RETRAIN, model_type, to_json(command))


def handle_sample(
    value: bytes,
    source_partition: int,
    source_offset: int,
    states: MutableMapping[str, Any],
    performance: MutableMapping[str, DayPerformance],
    views: Mapping[str, ModelTypeView],
    settings: StreamRules,
    now: float,
    registry_known: bool = True,
) -> list[Emitted]:
    """Count one forwarded sample, update its day, feed the A/B test; returns what to send.

    `registry_known` is False while this worker is still reading registry-events: the A/B state
    is then left alone rather than reset by a view that does not show the candidate yet.
    """
    sample = parse_sample(value)  # MalformedSample: the caller dead-letters the record
    model_type: str = sample["model_type"]
    version: str = sample["model_version"]
    source = rules.source_name("o", source_partition)

    day = sample["day"]
    key = rules.performance_key(model_type, version, day)
    daily = performance.get(key) or DayPerformance()
    if not rules.is_applied(daily.applied, source, source_offset):
        daily = DayPerformance(
            daily.sums.add(
                sample["positive_outcome"], sample["prediction"], sample["outcome_score"]
            ),
            rules.with_applied(daily.applied, source, source_offset),
        )
    performance[key] = daily

    stored_state = states.get(model_type)
    state = ModelTypeState.load(stored_state)
    if stored_state is None:
        state.counter = rules.RetrainCounter(lineage=rules.lineage_for(sample["event_id"]))
    if rules.is_applied(state.applied, source, source_offset):
        states[model_type] = state  # re-written on replay too: heals a lost changelog write
        return state.emitted_at(source, source_offset)

    emitted: list[Emitted] = []
    view = views.get(model_type)
    live = abtest.experiment_of(view)
    # Held by a candidate only while a test runs on it: one no test can decide (production forced
    # to 0) would hold every crossing, and the deployment that would replace it, for good.
    canary_running = registry_known and live is not None
    counter = _settle_pending(
        _after_manual_retrain(state.counter, view, now),
        model_type,
        view,
        settings,
        now,
        registry_known,
    )
    threshold = settings.retrain_sample_threshold
    in_flight = counter.pending_command is not None
    counter, crossed = rules.count_sample(counter, threshold, now, canary_running, in_flight)
    if crossed:
        emitted.append(
            _retrain_command(
                counter, model_type, RetrainReason.SAMPLE_THRESHOLD, view, now, threshold
            )
        )
        counter = rules.after_command(counter, now)
    elif counter.new_samples % threshold == 0 and (in_flight or canary_running):
        log.info(
            "threshold crossing held model_type=%s new_samples=%d held_crossings=%d: %s",
            model_type,
            counter.new_samples,
            counter.new_samples // threshold,
            f"retrain {counter.pending_command} in flight"
            if in_flight
            else f"candidate {view.candidate if view else None} under test",
        )
    state.counter = counter

    if registry_known:
        state.plan = settings.plan_for(model_type)
        decision = _feed_experiment(state, sample, live, state.plan)
        if decision is not None and state.experiment is not None:
            command = abtest.command_for(state.experiment, decision, model_type)
            log.info(
                "A/B decision model_type=%s version=%s verdict=%s weight=%g evidence=%s",
                model_type,
                state.experiment.candidate,
                decision.verdict.value,
                decision.weight,
                decision.evidence,
            )
            emitted.append(Emitted(Output.REGISTRY, model_type, to_json(command)))

    for item in emitted:
        state.remember(source, source_offset, item)
    state.applied = rules.with_applied(state.applied, source, source_offset)
    state.samples = (
        performance_samples(performance, model_type)  # (this sample's row counts it already)
        if state.samples is None
        else state.samples + 1
    )
    # Stored as the object (the changelog serializes it with `to_dict`): no parse per sample.
    states[model_type] = state
    return emitted


def _feed_experiment(
    state: ModelTypeState,
    sample: Mapping[str, Any],
    live: abtest.Live | None,
    plan: ab_rule.DecisionPlan,
) -> ab_rule.Decision | None:
    """One sample into the experiment the registry shows (started or moved to its next step
    first); its decision, if this sample's outcome or watermark brought one."""
    before = current = state.experiment
    if live is not None and (
        current is None
        or (current.production, current.candidate) != (live.production, live.candidate)
        or current.weight != live.weight
    ):
        # Only on a change of the view: following also clears a requested promotion, which
        # must hold until the registry applies it.
        state.experiment = current = abtest.followed(before, live, plan)
    if current is not before:
        state.missing_served_at = 0  # a new candidate: its own count
    state.running = abtest.running(current, live)
    if current is None or not state.running:
        return None
    version = sample["model_version"]
    served = sample["served_ts"]
    if served is None:
        if version in (current.candidate, current.production):
            state.missing_served_at += 1
        return None
    slots = len(current.pending)
    ab_rule.observe(
        current,
        plan,
        version=version,
        # Without a subject (a sample forwarded before subject_id was), the event is its own unit.
        subject_id=sample["subject_id"] or sample["event_id"],
        served_at=served,
        occurred_at=sample["occurred_ts"],
        positive=sample["positive_outcome"],
        squared_error=(sample["prediction"] - sample["outcome_score"]) ** 2,
    )
    if len(current.pending) == slots and current.watermark(plan) < state.next_due:
        return None  # nothing matured, no new slot: advance would change nothing
    decision = ab_rule.advance(current, plan)
    state.next_due = ab_rule.next_due(current, plan)
    return decision


def _after_manual_retrain(
    counter: rules.RetrainCounter, view: ModelTypeView | None, now: float
) -> rules.RetrainCounter:
    """`rules.after_manual_retrain` with the view's newest manual retrain, if it knows one (the
    common case, every sample, returns at once)."""
    if view is None or view.manual_retrain_at is None:
        return counter
    return rules.after_manual_retrain(
        counter, view.manual_retrain_at.timestamp(), view.manual_command
    )


def _settle_pending(
    counter: rules.RetrainCounter,
    model_type: str,
    view: ModelTypeView | None,
    settings: StreamRules,
    now: float,
    registry_known: bool,
) -> rules.RetrainCounter:
    """`rules.retrain_ended` with the answers the view knows (none while registry-events is
    still being read: the retrain then stays in flight, bounded by the timeout)."""
    if counter.pending_command is None:
        return counter
    answered = view.answered if registry_known and view is not None else ()
    settled, end = rules.retrain_ended(
        counter, answered, now, settings.retrain_pending_timeout_seconds
    )
    if end is rules.RetrainEnd.ANSWERED:
        log.info(
            "retrain answered model_type=%s command_id=%s new_samples=%d",
            model_type,
            counter.pending_command,
            counter.new_samples,
        )
    elif end is rules.RetrainEnd.TIMED_OUT:
        log.warning(
            "retrain timed out model_type=%s command_id=%s after %.0f s without an answer: "
            "the next crossing may send another",
            model_type,
            counter.pending_command,
            now - (counter.pending_since or now),
        )
    return settled


def handle_schedule(
    model_type: str,
    states: MutableMapping[str, Any],
    views: Mapping[str, ModelTypeView],
    settings: StreamRules,
    now: float,
    registry_known: bool = True,
) -> list[Emitted]:
    """The schedule trigger for one model type, checked by the worker that owns it; and the
    crossings a retrain held, once it is answered (with no sample needed to send them).

    Not tied to a source offset: a command whose state change was lost in a crash is emitted
    again from the same counter, so under the same command id.
    """
    stored = states.get(model_type)
    if stored is None:
        return []
    state = ModelTypeState.load(stored)
    view = views.get(model_type)
    counter = _after_manual_retrain(state.counter, view, now)
    counter = _settle_pending(counter, model_type, view, settings, now, registry_known)
    if counter is not state.counter:
        state.counter = counter
        states[model_type] = state
    if counter.pending_command is not None:
        return []  # one retrain in flight: the schedule waits for its answer like a crossing
    threshold = settings.retrain_sample_threshold
    # Crossings held for a retrain now answered go without waiting for a sample that may never
    # come (the traffic stopped); not while a candidate is under test, nor on a stale view.
    if counter.new_samples >= threshold and registry_known and abtest.experiment_of(view) is None:
        reason = RetrainReason.SAMPLE_THRESHOLD
    elif rules.schedule_due(state.counter, now, settings.retrain_max_age_seconds):
        reason = RetrainReason.SCHEDULE
    else:
        return []
    command = _retrain_command(state.counter, model_type, reason, view, now, threshold)
    state.counter = rules.after_command(state.counter, now)
    states[model_type] = state
    return [command]


# ---------------------------------------------------------------------------------------------
# Read side of the web views.


def performance_rows(
    performance: Mapping[str, DayPerformance], model_type: str, days: int, today: datetime
) -> list[dict[str, Any]]:
    first = rules.first_day_of_window(today.astimezone(UTC).date(), days)
    rows = []
    for key, stored in performance.items():
        key_type, version, day = rules.split_performance_key(key)
        if key_type == model_type and day >= first:
            rows.append(stored.sums.row(key_type, version, day))
    rows.sort(key=lambda row: (row["day"], row["version"]))
    return rows


def performance_samples(performance: Mapping[str, DayPerformance], model_type: str) -> int:
    """Samples in every daily performance row of `model_type`, whatever the day."""
    return sum(
        day_samples(stored)
        for key, stored in performance.items()
        if rules.performance_key_type(key) == model_type
    )


def day_samples(stored: DayPerformance | None) -> int:
    """Samples in one stored daily performance value (0 for none)."""
    return stored.sums.sample_count if stored is not None else 0


def rows_cover_state(stored_state: Mapping[str, Any], rows_samples: int) -> bool:
    """Whether daily performance rows holding `rows_samples` samples hold every sample a stored
    model-type state has counted: the rows and the state are separate changelog records (two
    topics, read in no set order), and a view must not show a count its rows do not add up to.
    A state from before `samples` existed cannot say, so it is taken as it is."""
    counted = stored_state.get("samples")
    return counted is None or rows_samples >= counted


def samples_view(states: Mapping[str, Any], model_type: str, threshold: int) -> dict[str, Any]:
    state = ModelTypeState.load(states.get(model_type))
    last = state.counter.last_retrain_at
    return {
        "model_type": model_type,
        "new_samples": state.counter.new_samples,
        "last_retrain_at": datetime.fromtimestamp(last, UTC).isoformat() if last else None,
        "retrain_commands": state.counter.commands,
        "threshold": threshold,
        "retrain_in_flight": state.counter.pending_command,
        "retrain_in_flight_since": (
            datetime.fromtimestamp(state.counter.pending_since, UTC).isoformat()
            if state.counter.pending_since
            else None
        ),
        # crossings counted and not yet sent (held while a retrain or a candidate is out)
        "held_crossings": state.counter.new_samples // max(threshold, 1),
    }


def abtest_view(states: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """`/abtest/{type}`, with the plan the worker decides this model type's experiment by."""
    state = ModelTypeState.load(states.get(model_type))
    return abtest.summary(
        state.experiment,
        state.plan or ab_rule.DecisionPlan(),
        model_type,
        state.missing_served_at,
        state.running,
    )
