"""The registry store port: one documented method per operation, returning domain objects."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from contracts.topics import TopicName
from registry.domain import ModelVersion, OutboxRecord
from registry.lifecycle import Plan

Planner = Callable[[Sequence[ModelVersion]], Plan]


@dataclass(frozen=True)
class ApplyResult:
    """What `apply` did: the plan committed, or `duplicate` when message_id was already handled."""

    duplicate: bool
    plan: Plan | None
    outcome: str  # "applied", "rejected", "refused", or the recorded outcome of the duplicate
    attempts: int = 1


class RegistryStore(ABC):
    """Persistence of versions, weights, processed message ids and the registry-events outbox.

    The lifecycle rules live in `registry.lifecycle`; a store only loads state, runs a planner
    and writes its plan atomically, so no store re-implements them.
    """

    @abstractmethod
    def apply(self, model_type: str, message_id: str, planner: Planner) -> ApplyResult:
        """In ONE transaction: skip if `message_id` was processed (duplicate=True), else load the
        model type's versions, run `planner` on them, write the plan's rows, its events to the
        outbox and `message_id` as processed. A concurrent writer's win (unique version,
        revision) retries the whole unit. A RegistryError from the planner propagates and
        nothing is written."""

    @abstractmethod
    def enqueue(self, model_type: str, topic: TopicName, payload: bytes) -> None:
        """Commit one record to the outbox on its own (a command the registry sends, no change)."""

    @abstractmethod
    def record_refusal(self, model_type: str, message_id: str, code: str, detail: str) -> bool:
        """Mark `message_id` processed with outcome `refused`; False when it already was."""

    @abstractmethod
    def processed_outcome(self, message_id: str) -> str | None:
        """The recorded outcome of a processed message id, None if unseen."""

    @abstractmethod
    def versions(self, model_type: str) -> list[ModelVersion]:
        """Every version of a model type, ascending by version number."""

    @abstractmethod
    def version(self, model_type: str, version: str) -> ModelVersion | None:
        """One version, or None."""

    @abstractmethod
    def model_types(self) -> list[str]:
        """Model types that have at least one version, sorted."""

    @abstractmethod
    def serving(self, model_type: str) -> tuple[int, dict[str, tuple[float, str]]]:
        """`(revision, {version: (weight, sha256)})` of versions with positive weight."""

    @abstractmethod
    def unsent_events(self, limit: int = 500) -> list[OutboxRecord]:
        """Outbox rows not yet published (every topic), oldest first."""

    @abstractmethod
    def mark_sent(self, ids: Sequence[int]) -> None:
        """Record that these outbox rows are on the topic."""

    @abstractmethod
    def publishing(self) -> AbstractContextManager[None]:
        """Held by one outbox publisher at a time among every instance sharing this database
        (waits while another holds it; a holder's death releases it), so two instances never
        read the same unsent row and both send it."""

    @abstractmethod
    def event_count(self) -> int:
        """How many registry events were ever recorded (sent or not; commands not counted)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the database does not answer."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
