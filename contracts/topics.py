"""Every topic name, key rule, writer and reader of the contract, in one place; nothing else spells a topic name."""

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


class Party(StrEnum):
    """Who writes or reads a topic: relearn's services, its CLI, and the world outside."""

    APPS = "apps"  # the applications that report outcomes
    STREAMS = "streams"
    TRAINER = "trainer"  # the training worker, and `relearn train --deploy` (same pipeline)
    REGISTRY = "registry"  # its service, its outbox and its dashboard
    SIMULATOR = "simulator"  # `relearn simulate`
    CLI = "cli"  # `relearn demo`'s timeline and the other `relearn` commands' own reads
    OPERATORS = "operators"


@dataclass(frozen=True)
class TopicContract:
    """One topic's key, value model, and who may write and read it."""

    key: str
    value: str  # the pydantic model in contracts.events, or how a dead letter is kept
    writers: frozenset[Party]
    readers: frozenset[Party]


def _parties(*parties: Party) -> frozenset[Party]:
    return frozenset(parties)


CONTRACTS: dict[TopicName, TopicContract] = {
    TopicName.OUTCOME_EVENTS: TopicContract(
        "subject_id",
        "OutcomeEvent",
        _parties(Party.APPS, Party.SIMULATOR),
        _parties(Party.STREAMS),
    ),
    TopicName.OUTCOME_EVENTS_DLQ: TopicContract(
        "as received", "the rejected value", _parties(Party.STREAMS), _parties(Party.OPERATORS)
    ),
    TopicName.TRAINING_SAMPLES: TopicContract(
        "model_type",
        "TrainingSampleForwarded",
        _parties(Party.STREAMS),
        _parties(Party.STREAMS, Party.TRAINER),
    ),
    # Streams' automatic commands; the registry's manual ones (POST /retrain, via its outbox).
    TopicName.RETRAIN_COMMANDS: TopicContract(
        "model_type",
        "RetrainRequested",
        _parties(Party.STREAMS, Party.REGISTRY),
        _parties(Party.TRAINER, Party.STREAMS, Party.REGISTRY, Party.CLI),
    ),
    TopicName.MODEL_DEPLOYED: TopicContract(
        "model_type",
        "ModelDeployed",
        _parties(Party.TRAINER),
        _parties(Party.REGISTRY, Party.CLI),
    ),
    TopicName.REGISTRY_COMMANDS: TopicContract(
        "model_type",
        "RegistryCommandIssued",
        _parties(Party.STREAMS),
        _parties(Party.REGISTRY, Party.CLI),
    ),
    # The registry (outbox) writes every type but one: see REGISTRY_EVENT_WRITER.
    TopicName.REGISTRY_EVENTS: TopicContract(
        "model_type",
        "RegistryEventOccurred",
        _parties(Party.REGISTRY, Party.TRAINER),
        _parties(Party.STREAMS, Party.REGISTRY, Party.CLI),
    ),
    TopicName.INTERNAL_DLQ: TopicContract(
        "as received",
        "the poison record",
        _parties(Party.STREAMS, Party.REGISTRY),
        _parties(Party.OPERATORS),
    ),
}

# What each topic is keyed by (documentation and producers both read this).
KEY_FIELD: dict[TopicName, str] = {topic: contract.key for topic, contract in CONTRACTS.items()}

# The one writer of each registry event type (values of contracts.events.RegistryEventType):
# `deployment_rejected` answers a retrain command that produced no model, so it is the trainer's;
# the registry's refusal of a delivered model is `artifact_rejected`.
REGISTRY_EVENT_WRITER: dict[str, Party] = {
    "version_registered": Party.REGISTRY,
    "traffic_changed": Party.REGISTRY,
    "version_promoted": Party.REGISTRY,
    "version_rolled_back": Party.REGISTRY,
    "version_archived": Party.REGISTRY,
    "artifact_rejected": Party.REGISTRY,
    "deployment_rejected": Party.TRAINER,
}

# The one writer of each retrain reason (values of contracts.events.RetrainReason).
RETRAIN_REASON_WRITER: dict[str, Party] = {
    "sample_threshold": Party.STREAMS,
    "schedule": Party.STREAMS,
    "manual": Party.REGISTRY,
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
