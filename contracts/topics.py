"""Every topic name and key rule of the contract, in one place; nothing else spells a topic name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TopicName(StrEnum):
    """Base names; the deployed name is the optional prefix plus this."""

    OUTCOME_EVENTS = "outcome-events"
    OUTCOME_EVENTS_DLQ = "outcome-events.dlq"
    TRAINING_SAMPLES = "training-samples"
    RETRAIN_COMMANDS = "retrain-commands"
    MODEL_DEPLOYED = "model-deployed"
    REGISTRY_COMMANDS = "registry-commands"
    REGISTRY_EVENTS = "registry-events"
    INTERNAL_DLQ = "relearn-internal.dlq"


# What each topic is keyed by (documentation and producers both read this).
KEY_FIELD: dict[TopicName, str] = {
    TopicName.OUTCOME_EVENTS: "subject_id",
    TopicName.OUTCOME_EVENTS_DLQ: "as received",
    TopicName.TRAINING_SAMPLES: "model_type",
    TopicName.RETRAIN_COMMANDS: "model_type",
    TopicName.MODEL_DEPLOYED: "model_type",
    TopicName.REGISTRY_COMMANDS: "model_type",
    TopicName.REGISTRY_EVENTS: "model_type",
    TopicName.INTERNAL_DLQ: "as received",
}


@dataclass(frozen=True)
class Topics:
    """The deployed topic names for one prefix (tests isolate runs with a unique prefix)."""

    prefix: str = ""

    def name(self, topic: TopicName) -> str:
        return f"{self.prefix}{topic.value}"

    @property
    def outcome_events(self) -> str:
        return self.name(TopicName.OUTCOME_EVENTS)

    @property
    def outcome_events_dlq(self) -> str:
        return self.name(TopicName.OUTCOME_EVENTS_DLQ)

    @property
    def training_samples(self) -> str:
        return self.name(TopicName.TRAINING_SAMPLES)

    @property
    def retrain_commands(self) -> str:
        return self.name(TopicName.RETRAIN_COMMANDS)

    @property
    def model_deployed(self) -> str:
        return self.name(TopicName.MODEL_DEPLOYED)

    @property
    def registry_commands(self) -> str:
        return self.name(TopicName.REGISTRY_COMMANDS)

    @property
    def registry_events(self) -> str:
        return self.name(TopicName.REGISTRY_EVENTS)

    @property
    def internal_dlq(self) -> str:
        return self.name(TopicName.INTERNAL_DLQ)

    def all(self) -> list[str]:
        return [self.name(t) for t in TopicName]
