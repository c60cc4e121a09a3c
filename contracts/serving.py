"""What the registry, streams and clients agree on about serving: statuses, the ramp, the default score."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A version's lifecycle status (the registry's column and `RegistryEventOccurred.status`)."""

    STAGING = "staging"
    PRODUCTION = "production"
    ROLLED_BACK = "rolled_back"
    ARCHIVED = "archived"


# The candidate's traffic weights on its way to production: registered at the first step, moved
# up one step by each winning A/B test, promoted at 1.0.
RAMP: tuple[float, ...] = (0.1, 0.5, 1.0)
INITIAL_CANDIDATE_WEIGHT = RAMP[0]
# The most a staging version may hold (the ramp's last step before promotion): production
# always keeps at least the rest. More than this is a promotion.
MAX_CANDIDATE_WEIGHT = max(step for step in RAMP if step < 1.0)

# The score a client serves before any version of its model type exists (with NO_MODEL_VERSION).
DEFAULT_SCORE = 0.5


def next_ramp_weight(current: float) -> float:
    """The next step of the promotion ramp above the candidate's current weight."""
    for step in RAMP:
        if step > current + 1e-9:
            return step
    return 1.0
