"""What streams knows of each model type's versions and manual retrains (pure).

Folded from registry-events and from the manual commands on retrain-commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from contracts.events import (
    REJECTIONS,
    RegistryEventOccurred,
    RegistryEventType,
    RetrainReason,
    RetrainRequested,
)
from contracts.serving import Status
from contracts.validation import MAX_CLOCK_SKEW
from contracts.versions import newest_version

# Retrain commands remembered as answered per model type: only the one in flight is ever looked
# up, and one retrain is in flight at a time, so a few more than that cover any reordering.
REMEMBERED_ANSWERS = 64


@dataclass(frozen=True)
class ModelTypeView:
    """Statuses and the full weight map of one model type, as of its last registry event."""

    model_type: str
    statuses: Mapping[str, Status] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    changed_at: datetime | None = None  # when the weights last changed
    manual_retrain_at: datetime | None = None  # requested_at of the newest manual retrain
    manual_command: str | None = None  # its command_id, when it carried one
    # Retrain commands answered: a version registered for them, or a rejection (superseded too).
    answered: tuple[str, ...] = ()

    @property
    def production(self) -> str | None:
        return newest_version(
            v for v, status in self.statuses.items() if status == Status.PRODUCTION
        )

    @property
    def candidate(self) -> str | None:
        """The newest staging version that receives traffic (the one under A/B test)."""
        return newest_version(
            v
            for v, status in self.statuses.items()
            if status == Status.STAGING and self.weights.get(v, 0.0) > 0.0
        )


def apply_registry_event(view: ModelTypeView | None, event: RegistryEventOccurred) -> ModelTypeView:
    """The view after one registry event (each event carries the full weight map after it)."""
    current = view or ModelTypeView(model_type=event.model_type)
    answered = answered_command(event)
    if answered is not None and answered not in current.answered:
        current = replace(current, answered=(*current.answered, answered)[-REMEMBERED_ANSWERS:])
    if event.type in REJECTIONS:
        return current  # nothing was registered, no weight changed
    statuses = dict(current.statuses)
    if event.version and event.status:
        statuses[event.version] = event.status
    # Every change carries the full map after it; an event without one changed no weight.
    weights = dict(event.weights) if event.weights else dict(current.weights)
    changed_at = current.changed_at
    if weights != dict(current.weights):
        changed_at = event.occurred_at
    return replace(current, statuses=statuses, weights=weights, changed_at=changed_at)


def answered_command(event: RegistryEventOccurred) -> str | None:
    """The retrain command a registry event ends, if any: the `command_id` in the details of a
    `version_registered`, a `deployment_rejected` (the trainer's, `superseded` included) or an
    `artifact_rejected` (the registry's)."""
    if event.type is not RegistryEventType.VERSION_REGISTERED and event.type not in REJECTIONS:
        return None
    command = (event.details or {}).get("command_id")
    return command if isinstance(command, str) and command else None


def apply_retrain_command(
    view: ModelTypeView | None, command: RetrainRequested, now: datetime
) -> ModelTypeView | None:
    """The view after one retrain command: only a manual one, streams' own are counted already.

    A command dated beyond the clock skew after `now` is refused: as the newest manual retrain
    it would hide every real one after it, and restart the 7-day clock in the future.
    """
    if command.reason is not RetrainReason.MANUAL or command.requested_at > now + MAX_CLOCK_SKEW:
        return view
    current = view or ModelTypeView(model_type=command.model_type)
    if current.manual_retrain_at is not None and command.requested_at <= current.manual_retrain_at:
        return current
    # A command without an id gets a fresh one on every parse: no answer could match it.
    manual_command = command.command_id if "command_id" in command.model_fields_set else None
    return replace(current, manual_retrain_at=command.requested_at, manual_command=manual_command)
