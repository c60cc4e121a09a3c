"""bench/decision_quality.py's vectorized NEW rule decides as streams/experiment.py does, event by event."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.decision_quality import World, _realize, draw, new_rule
from streams.experiment import RAMP, DecisionPlan, Verdict, advance, bucket_of, observe, start
from streams.experiment import start_step as begin_step

PLAN = DecisionPlan(
    first_look=100,
    max_candidate_outcomes=3_200,
    max_duration_seconds=3 * 86_400.0,
    outcome_window_seconds=6 * 3600.0,
    slots_per_window=6,
)


def module_rule(events, world: World) -> tuple[str, int]:
    """The same events through the module, in arrival order; steps start where it promotes."""
    starts: list[float] = []
    while True:
        weight = np.full(events.served.size, RAMP[0])
        for k, t in enumerate(starts):
            weight[events.served >= t] = RAMP[k + 1]
        candidate, positive, error, arrived = _realize(events, world, weight)
        state = start("exp", "v1.0", "v1.1", RAMP[0], 0.0, PLAN)
        restarted = False
        for i in np.argsort(arrived, kind="stable"):
            observe(
                state,
                PLAN,
                version="v1.1" if candidate[i] else "v1.0",
                subject_id=f"s{events.subject[i]}",
                served_at=float(events.served[i]),
                occurred_at=float(arrived[i]),
                positive=bool(positive[i]),
                squared_error=float(error[i]),
            )
            decision = advance(state, PLAN)
            if decision is None:
                continue
            matured = state.matured()[0]
            if decision.verdict is Verdict.PROMOTE and decision.weight < 1.0:
                # The registry applies the ramp: outcomes served from this event on are 0.5's.
                if not starts:
                    starts.append(float(arrived[i]))
                    restarted = True  # realize the events again with the new step
                    break
                begin_step(state, decision.weight, starts[0], PLAN)
                continue
            if decision.verdict is Verdict.PROMOTE:
                return "promote_1.0", matured
            return decision.verdict.value, matured
        if not restarted:
            return "continue", state.matured()[0]


@pytest.mark.parametrize(
    ("seed", "effect", "expected"),
    [(1, -0.1, "rollback"), (2, 0.0, "keep_production"), (4, 0.1, "promote_1.0")],
)
def test_the_benchmark_measures_the_module(seed: int, effect: float, expected: str) -> None:
    world = World(0.5, "fast", subjects=5_000, effect=effect, rate_per_hour=400.0)
    events = draw(np.random.default_rng(seed), world, PLAN)
    buckets = np.array(
        [bucket_of("exp", f"s{s}", PLAN.buckets) for s in range(world.subjects)], dtype=np.int64
    )
    events = dataclasses.replace(events, bucket=buckets[events.subject])
    bench = new_rule(events, world, PLAN)
    assert module_rule(events, world) == (bench.verdict, bench.candidate_samples)
    assert bench.verdict == expected
