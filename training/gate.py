"""The deployment gate: is a candidate not worse than production on the same test rows? No I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class GateOutcome(StrEnum):
    PASSED = "passed"
    REJECTED = "rejected"
    NO_PRODUCTION = "no_production"
    # Under the `deploy` policy only: no comparison was possible and the candidate went ahead.
    REGISTRY_UNREACHABLE = "registry_unreachable"
    INCOMPATIBLE_PRODUCTION = "incompatible_production"
    # Under the `reject` policy: no comparison was possible, so the candidate does not deploy.
    UNAVAILABLE = "gate_unavailable"


class GateUnavailablePolicy(StrEnum):
    """What a candidate gets when production exists but cannot be compared with it."""

    REJECT = "reject"
    DEPLOY = "deploy"


@dataclass(frozen=True)
class GateVerdict:
    outcome: GateOutcome
    candidate_loss: float
    production_loss: float | None = None
    production_version: str | None = None
    tolerance: float = 0.0
    detail: str = ""

    @property
    def deploy(self) -> bool:
        return self.outcome not in (GateOutcome.REJECTED, GateOutcome.UNAVAILABLE)


def judge(
    candidate_loss: float,
    production_loss: float,
    tolerance: float,
    production_version: str | None = None,
) -> GateVerdict:
    """Reject when the candidate's test loss exceeds production's by more than `tolerance`."""
    if not math.isfinite(production_loss):
        # A production model that scores NaN cannot be the bar: it would reject every candidate
        # and never be replaced.
        return GateVerdict(
            outcome=GateOutcome.INCOMPATIBLE_PRODUCTION,
            candidate_loss=candidate_loss,
            production_loss=production_loss,
            production_version=production_version,
            tolerance=tolerance,
            detail=f"production {production_version or '?'} has a test loss of "
            f"{production_loss}: no bar to compare with",
        )
    limit = production_loss * (1.0 + tolerance)
    passed = candidate_loss <= limit
    detail = (
        f"candidate test loss {candidate_loss:.6g} vs production {production_version or '?'} "
        f"{production_loss:.6g} (limit {limit:.6g}, tolerance {tolerance:.0%})"
    )
    return GateVerdict(
        outcome=GateOutcome.PASSED if passed else GateOutcome.REJECTED,
        candidate_loss=candidate_loss,
        production_loss=production_loss,
        production_version=production_version,
        tolerance=tolerance,
        detail=detail,
    )


def skipped(outcome: GateOutcome, candidate_loss: float, detail: str) -> GateVerdict:
    """No comparison was possible; the candidate deploys and the reason is recorded."""
    return GateVerdict(outcome=outcome, candidate_loss=candidate_loss, detail=detail)


def unavailable(
    cause: GateOutcome,
    candidate_loss: float,
    detail: str,
    policy: GateUnavailablePolicy,
    production_version: str | None = None,
) -> GateVerdict:
    """Production may exist but could not be compared (`cause`): the policy decides.

    `reject` (the default) fails closed: an unchecked model never reaches traffic because the
    registry was down for a moment; the next retrain command tries again. `deploy` is the old
    fail-open behaviour, for setups that prefer a fresh model to a gated one.
    """
    if policy is GateUnavailablePolicy.DEPLOY:
        return GateVerdict(
            outcome=cause,
            candidate_loss=candidate_loss,
            production_version=production_version,
            detail=f"{detail}; passed ungated (gate unavailable policy: deploy)",
        )
    return GateVerdict(
        outcome=GateOutcome.UNAVAILABLE,
        candidate_loss=candidate_loss,
        production_version=production_version,
        detail=f"{cause.value}: {detail}; rejected (gate unavailable policy: reject)",
    )
