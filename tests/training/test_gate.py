"""The gate rule and the evaluation losses."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from contracts.model_types import Loss
from training.gate import GateOutcome, judge
from training.losses import evaluation_loss


def test_gate_passes_within_tolerance_and_rejects_beyond() -> None:
    assert judge(0.0104, 0.0100, 0.05, "v1.0").outcome is GateOutcome.PASSED
    assert judge(0.0090, 0.0100, 0.05).deploy
    rejected = judge(0.0106, 0.0100, 0.05, "v1.0")
    assert rejected.outcome is GateOutcome.REJECTED and not rejected.deploy
    assert "v1.0" in rejected.detail


@given(
    st.floats(0.0, 10.0, allow_nan=False),
    st.floats(1e-6, 10.0, allow_nan=False),
    st.floats(0.0, 1.0, allow_nan=False),
)
def test_gate_rejects_exactly_when_worse_beyond_tolerance(
    candidate: float, production: float, tolerance: float
) -> None:
    verdict = judge(candidate, production, tolerance)
    assert verdict.deploy == (candidate <= production * (1 + tolerance))


def test_losses() -> None:
    targets = np.array([0.0, 1.0, 1.0, 0.0])
    assert evaluation_loss(np.array([0.0, 1.0, 0.5, 0.5]), targets, Loss.MSE) == 0.125
    perfect = evaluation_loss(np.array([0.0, 1.0, 1.0, 0.0]), targets, Loss.BCE)
    assert 0 < perfect < 1e-6  # clipped: finite even for certain answers
    coin = evaluation_loss(np.full(4, 0.5), targets, Loss.BCE)
    assert math.isclose(coin, math.log(2))
    assert math.isfinite(evaluation_loss(np.array([1.0, 0.0, 0.0, 1.0]), targets, Loss.BCE))


def test_a_production_model_that_scores_nan_is_no_bar() -> None:
    """NaN as the bar rejected every candidate: the broken model could never be replaced."""
    verdict = judge(0.02, math.nan, 0.05, "v1.3")
    assert verdict.outcome is GateOutcome.INCOMPATIBLE_PRODUCTION and verdict.deploy
    assert "v1.3" in verdict.detail
