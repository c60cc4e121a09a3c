"""The follower's fold of retrain-commands, without a broker (its tails are never started)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.events import RetrainReason, RetrainRequested, to_json
from streams.registry_follower import RegistryFollower


def test_a_manual_retrain_dated_in_the_future_does_not_hide_the_real_ones_after_it() -> None:
    """A command dated 2999 used to become the newest manual retrain for good: every real one
    after it was older, so none applied again."""
    follower = RegistryFollower("127.0.0.1:1", "registry-events", "retrain-commands")
    now = datetime.now(UTC)
    for requested_at in (datetime(2999, 1, 1, tzinfo=UTC), now - timedelta(seconds=1)):
        command = RetrainRequested(
            model_type="calling_score", reason=RetrainReason.MANUAL, requested_at=requested_at
        )
        follower.apply_retrain_command(to_json(command))
    assert follower.manual_retrains_seen == 1
    assert follower.views["calling_score"].manual_retrain_at == now - timedelta(seconds=1)
