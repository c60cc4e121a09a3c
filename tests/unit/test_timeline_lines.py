"""The demo's timeline tells held crossings and superseded commands in plain words."""

from __future__ import annotations

from contracts.events import (
    RegistryEventOccurred,
    RegistryEventType,
    RetrainReason,
    RetrainRequested,
)
from relearn.timeline import CrossingHeld, describe


def test_held_crossings_and_superseded_commands_have_their_own_lines() -> None:
    command = RetrainRequested(
        model_type="calling_score",
        reason=RetrainReason.SAMPLE_THRESHOLD,
        new_samples=4200,
        held_crossings=3,
    )
    assert "3 more threshold crossings were held into it" in describe(command)
    plain = command.model_copy(update={"held_crossings": 0})
    assert "held" not in describe(plain)
    held = CrossingHeld(
        model_type="calling_score",
        new_samples=1000,
        held_crossings=1,
        retrain_in_flight="abcdef12-x",
    )
    assert describe(held) == (
        "threshold crossed for calling_score (1000 new samples) - held, no second command: "
        "retrain abcdef12 still in flight"
    )
    assert "a candidate under test" in describe(held.model_copy(update={"retrain_in_flight": None}))
    superseded = RegistryEventOccurred(
        type=RegistryEventType.DEPLOYMENT_REJECTED,
        model_type="calling_score",
        reason="superseded",
        details={"command_id": "11111111-a", "superseded_by": "22222222-b"},
    )
    assert describe(superseded).startswith(
        "trainer: retrain 11111111 for calling_score superseded by 22222222 queued behind it"
    )
