"""Test doubles for the simulator's ports: a list publisher and deterministic scorers (no mocks of Kafka)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from simulator.world import World


@dataclass
class ListPublisher:
    """Keeps what would have been produced, in order."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    failures: int = 0

    def publish(self, key: str, value: bytes) -> None:
        self.messages.append((key, value))

    def flush(self, timeout: float) -> int:
        return 0


@dataclass(frozen=True)
class Served:
    score: float
    version: str
    sha256: str | None = None


class OracleScorer:
    """Serves the hidden truth itself (plus optional noise): the best model there can be."""

    def __init__(self, world: World, version: str = "v1.0", noise: float = 0.0) -> None:
        self.world, self.version, self.noise = world, version, noise
        self._rng = np.random.default_rng(5)

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Served:
        score = float(self.world.probability(np.asarray(features)))
        if self.noise:
            score += float(self._rng.standard_normal()) * self.noise
        return Served(score, self.version)


class SplitScorer:
    """Two scorers behind a deterministic per-subject split, like the registry's routing."""

    def __init__(self, production: object, candidate: object, candidate_share: float) -> None:
        self.production, self.candidate, self.share = production, candidate, candidate_share

    def predict(self, model_type: str, subject_id: str, features: Sequence[float]) -> Served:
        bucket = int(subject_id.rsplit("-", 1)[1]) % 100
        chosen = self.candidate if bucket < self.share * 100 else self.production
        return chosen.predict(model_type, subject_id, features)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def world() -> World:
    return World()
