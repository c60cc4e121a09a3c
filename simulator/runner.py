"""The simulated app's loop: visit subjects, get a served score, act on it, emit outcome events.

It depends on two ports only: a `Scorer` (the registry's ModelRouter in production use; any
object with the same `predict` in tests) and a `Publisher` (Kafka at the edge). Given the same
seed and the same served scores, it emits exactly the same events.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from contracts.events import OutcomeEvent, to_json
from contracts.serving import DEFAULT_SCORE
from contracts.validation import RejectReason
from contracts.versions import NO_MODEL_VERSION
from simulator.delays import OutcomeDelays
from simulator.ground_truth import GroundTruth
from simulator.policy import ContactPolicy
from simulator.scenarios import FaultPlan, Scenario
from simulator.world import WORLD_SEED, Outcome, World

log = logging.getLogger(__name__)

UNKNOWN_MODEL_TYPE = "no_such_model_type"
# Invalid messages the simulator can send, each with the reason streams/ must give it.
INVALID_KINDS: tuple[RejectReason, ...] = (
    RejectReason.INVALID_JSON,
    RejectReason.SCHEMA,
    RejectReason.UNKNOWN_MODEL_TYPE,
    RejectReason.FEATURE_COUNT,
    RejectReason.NON_FINITE,
    RejectReason.FUTURE_TIMESTAMP,
)
# Bounds on visits per emitted event: the policy contacts >= 5% of visits, so this never binds
# unless a scorer misbehaves; then the loop stops loudly instead of spinning.
MAX_VISITS_PER_EVENT = 10_000


class ServedScore(Protocol):
    @property
    def score(self) -> float: ...

    @property
    def version(self) -> str: ...


class Scorer(Protocol):
    """The part of registry.client.ModelRouter the simulator uses."""

    def predict(
        self, model_type: str, subject_id: str, features: Sequence[float]
    ) -> ServedScore: ...


class Publisher(Protocol):
    def publish(self, key: str, value: bytes) -> None: ...

    def flush(self, timeout: float) -> int: ...  # messages still undelivered after timeout

    @property
    def failures(self) -> int: ...


@dataclass(frozen=True)
class DefaultPrediction:
    score: float = DEFAULT_SCORE
    version: str = NO_MODEL_VERSION
    sha256: str | None = None


class DefaultScorer:
    """No registry: every subject gets the default score as v0.0 (`--offline`)."""

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> ServedScore:
        return DefaultPrediction()


class SimulationError(Exception):
    """Root of the simulator's errors."""


@dataclass(frozen=True)
class SimulationConfig:
    scenario: Scenario = Scenario.STEADY
    events: int = 1_000
    rate: float = 0.0  # messages per second; 0 = as fast as the producer takes them
    seed: int = 1
    model_types: tuple[str, ...] = ("calling_score",)
    invalid_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    faults_dir: Path | None = Path(".relearn/faults")  # None: the scenario writes no fault
    world_seed: int = WORLD_SEED
    bad_strength: float = 0.0  # 0 = the scenario's default
    good_strength: float = 0.0
    # The hostile world: outcomes reported after serving (None: as served, the default). Each
    # outcome counts as one of `events` when served; one not yet known at the end is sent if it
    # is due within `outcome_wait_seconds`, else counted as unreported (the app stopped).
    outcome_delays: OutcomeDelays | None = None
    outcome_wait_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.events < 0:
            raise ValueError("events must be >= 0")
        if not self.model_types:
            raise ValueError("at least one model type")
        fractions = (self.invalid_fraction, self.duplicate_fraction)
        if any(not 0.0 <= f <= 1.0 for f in fractions) or sum(fractions) > 1.0:
            raise ValueError("invalid and duplicate fractions must be in [0, 1] and sum to <= 1")


class RateLimiter:
    """Paces message i to start + i / rate; after a stall it does not burst to catch up."""

    def __init__(
        self,
        rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._start = monotonic()

    def wait(self, index: int) -> None:
        if self._rate <= 0:
            return
        delay = self._start + index / self._rate - self._monotonic()
        if delay > 0:
            self._sleep(delay)
        elif delay < -1.0:  # fell behind by over a second: re-anchor instead of bursting
            self._start = self._monotonic() - index / self._rate


@dataclass(frozen=True)
class _Served:
    """A served prediction whose outcome is not known yet (hostile world)."""

    model_type: str
    version: str
    subject_id: str
    features: np.ndarray
    score: float
    outcome: Outcome
    served_at: datetime


@dataclass
class Simulation:
    """Runs one scenario for `config.events` messages through a scorer into a publisher."""

    config: SimulationConfig
    scorer: Scorer
    publisher: Publisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    world: World | None = None
    policy: ContactPolicy = field(default_factory=ContactPolicy)

    def __post_init__(self) -> None:
        if self.world is None:
            self.world = World(self.config.world_seed)
        self._rng = np.random.default_rng(self.config.seed)
        plan_args: dict[str, Any] = {}
        if self.config.bad_strength:
            plan_args["bad_strength"] = self.config.bad_strength
        if self.config.good_strength:
            plan_args["good_strength"] = self.config.good_strength
        faults_dir = None if self.config.faults_dir is None else Path(self.config.faults_dir)
        self.faults = FaultPlan(self.config.scenario, faults_dir, **plan_args)
        self.truth = GroundTruth(
            scenario=self.config.scenario.value,
            seed=self.config.seed,
            world_seed=self.config.world_seed,
            events_requested=self.config.events,
        )
        self._history: list[tuple[str, bytes]] = []
        # (known at, sequence, what was served): outcomes to report once their time has come
        self._pending: list[tuple[datetime, int, _Served]] = []

    def run(
        self,
        progress: Callable[[GroundTruth], None] | None = None,
        progress_interval: float = 0.2,
        flush_timeout: float = 30.0,
    ) -> GroundTruth:
        """Send every message; always flushes and returns the truth so far (also on Ctrl-C)."""
        truth = self.truth
        truth.started_at = self.clock().isoformat()
        limiter = RateLimiter(self.config.rate, self.monotonic, self.sleep)
        last_report = self.monotonic()
        try:
            for index in range(self.config.events):
                limiter.wait(index)
                self.step(index)
                self._report_due()
                if progress is not None and self.monotonic() - last_report >= progress_interval:
                    last_report = self.monotonic()
                    progress(truth)
            self._wait_for_outcomes()
        finally:
            truth.outcomes_unreported = len(self._pending)
            undelivered = self.publisher.flush(flush_timeout)
            truth.delivery_failures = self.publisher.failures + undelivered
            truth.faults_written = [asdict(fault) for fault in self.faults.written]
            truth.finished_at = self.clock().isoformat()
            if progress is not None:
                progress(truth)
        return truth

    def step(self, index: int) -> None:
        """Produce message number `index`: a repeat, an invalid message, or a new outcome."""
        u = self._rng.random()
        duplicate, invalid = self.config.duplicate_fraction, self.config.invalid_fraction
        if u < duplicate and self._history:
            key, value = self._history[int(self._rng.integers(len(self._history)))]
            self.publisher.publish(key, value)
            self.truth.record_duplicate()
        elif duplicate <= u < duplicate + invalid:
            key, value, reason = self._invalid_message()
            self.publisher.publish(key, value)
            self.truth.record_invalid(reason.value)
        else:
            self._valid_message(index)

    def _model_type(self) -> str:
        types = self.config.model_types
        return types[int(self._rng.integers(len(types)))] if len(types) > 1 else types[0]

    def _event_id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self._rng.bytes(16), version=4)

    def _valid_message(self, index: int) -> None:
        assert self.world is not None
        model_type = self._model_type()
        for _ in range(MAX_VISITS_PER_EVENT):
            subject = int(self._rng.integers(self.world.population))
            subject_id = self.world.subject_id(subject)
            features = self.world.features(subject, self._rng)
            served = self.scorer.predict(model_type, subject_id, features.tolist())
            version, score = served.version, float(served.score)
            self.truth.visits += 1
            self.truth.served_visits[f"{model_type}/{version}"] += 1
            self.faults.observe(model_type, version, index)
            u, v = self._rng.random(), self._rng.random()
            if self.policy.should_contact(model_type, version, score, u, v):
                break
        else:
            raise SimulationError(f"{MAX_VISITS_PER_EVENT} visits without a contact")
        outcome = self.world.outcome(features, self._rng)
        occurred_at = self.clock()
        if self.config.outcome_delays is not None and math.isfinite(score):
            # Served now; the outcome is known (and sent) only after its delay.
            delays = self.config.outcome_delays
            delay = delays.delay(model_type, outcome.positive, self._rng.random())
            waiting = _Served(
                model_type, version, subject_id, features, score, outcome, occurred_at
            )
            heapq.heappush(self._pending, (occurred_at + timedelta(seconds=delay), index, waiting))
            return
        if not math.isfinite(score):
            # A scorer that returns NaN makes an event streams/ must reject; count it as such.
            key, value = (
                subject_id,
                _json_bytes(
                    self._event_dict(model_type, version, subject_id, features, score, occurred_at)
                    | {"outcome_score": outcome.outcome_score, "positive_outcome": outcome.positive}
                ),
            )
            self.publisher.publish(key, value)
            self.truth.record_invalid(RejectReason.NON_FINITE.value)
            return
        # The simulated app learns the outcome when it serves.
        known = _Served(model_type, version, subject_id, features, score, outcome, occurred_at)
        self._report(known, occurred_at)

    def _report_due(self, now: datetime | None = None) -> None:
        """Send every pending outcome whose time has come, in the order they became known."""
        if not self._pending:
            return
        now = self.clock() if now is None else now
        while self._pending and self._pending[0][0] <= now:
            known_at, _, served = heapq.heappop(self._pending)
            self._report(served, known_at)

    def _wait_for_outcomes(self) -> None:
        """At the end: wait for the outcomes known within `outcome_wait_seconds`, send them."""
        if not self._pending:
            return
        deadline = self.clock() + timedelta(seconds=self.config.outcome_wait_seconds)
        while self._pending and self._pending[0][0] <= deadline:
            due = self._pending[0][0]
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                self.sleep(wait)
            self._report_due(max(self.clock(), due))

    def _report(self, served: _Served, occurred_at: datetime) -> None:
        """One valid outcome event, served at `served.served_at`, known at `occurred_at`."""
        model_type, version, subject_id = served.model_type, served.version, served.subject_id
        outcome, score = served.outcome, served.score
        event = OutcomeEvent(
            event_id=self._event_id(),
            model_type=model_type,
            model_version=version,
            subject_id=subject_id,
            features=[float(x) for x in served.features],
            prediction=score,
            outcome_score=outcome.outcome_score,
            positive_outcome=outcome.positive,
            occurred_at=occurred_at,
            served_at=served.served_at,
        )
        value = to_json(event)
        self.publisher.publish(subject_id, value)
        self._history.append((subject_id, value))
        self.truth.record_valid(
            model_type,
            version,
            occurred_at.astimezone(UTC).date().isoformat(),
            outcome.positive,
            score,
            outcome.outcome_score,
        )

    def _event_dict(
        self,
        model_type: str,
        version: str,
        subject_id: str,
        features: np.ndarray,
        score: float,
        occurred_at: datetime,
    ) -> dict[str, Any]:
        return {
            "event_id": str(self._event_id()),
            "model_type": model_type,
            "model_version": version,
            "subject_id": subject_id,
            "features": [float(x) for x in features],
            "prediction": score,
            "outcome_score": 0.5,
            "positive_outcome": False,
            "occurred_at": occurred_at.astimezone(UTC).isoformat(),
            "served_at": occurred_at.astimezone(UTC).isoformat(),
        }

    def _invalid_message(self) -> tuple[str, bytes, RejectReason]:
        """A message that breaks exactly one rule of the contract; returns the reason it earns."""
        assert self.world is not None
        reason = INVALID_KINDS[int(self._rng.integers(len(INVALID_KINDS)))]
        subject = int(self._rng.integers(self.world.population))
        subject_id = self.world.subject_id(subject)
        features = self.world.features(subject, self._rng)
        event = self._event_dict(
            self._model_type(), NO_MODEL_VERSION, subject_id, features, DEFAULT_SCORE, self.clock()
        )
        if reason is RejectReason.INVALID_JSON:
            return subject_id, _json_bytes(event)[:-7], reason  # truncated mid-object
        if reason is RejectReason.SCHEMA:
            event["outcome_score"] = 1.5
        elif reason is RejectReason.UNKNOWN_MODEL_TYPE:
            event["model_type"] = UNKNOWN_MODEL_TYPE
        elif reason is RejectReason.FEATURE_COUNT:
            event["features"] = event["features"][:-1]
        elif reason is RejectReason.NON_FINITE:
            event["features"][0] = math.nan
        elif reason is RejectReason.FUTURE_TIMESTAMP:
            event["occurred_at"] = (self.clock() + timedelta(hours=1)).astimezone(UTC).isoformat()
        return subject_id, _json_bytes(event), reason


def _json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, allow_nan=True).encode()
