"""The simulated world (pure): a fixed population of subjects and the hidden truth behind outcomes.

Everything here is fixed by a world seed that does not change between `relearn simulate` runs,
so a model trained on one run's events predicts the next run's subjects just as well; the
run's own `--seed` only decides which subjects come, in which order, and what then happens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_COUNT = 23
WORLD_SEED = 2026
POPULATION = 20_000
# Per-visit jitter on the continuous features: a subject's situation changes a little each day.
VISIT_JITTER = 0.1
# outcome_score = the true probability plus this much noise, clipped to [0, 1].
OUTCOME_SCORE_NOISE = 0.08
# Sharpness and offset of the truth: base rate ~0.33, the best-scored 30% ~0.69.
TRUTH_SLOPE = 2.2
TRUTH_OFFSET = -1.0


@dataclass(frozen=True)
class Outcome:
    positive: bool
    outcome_score: float
    probability: float  # hidden; kept for the ground truth, never sent


class World:
    """Subjects with features from a fixed distribution, and features -> outcome probability."""

    def __init__(self, seed: int = WORLD_SEED, population: int = POPULATION) -> None:
        rng = np.random.default_rng(seed)
        self.population = population
        normal = rng.standard_normal((population, 12))
        uniform = rng.random((population, 6))
        binary = (rng.random((population, 3)) < 0.3).astype(np.float64)
        skewed = np.exp(rng.standard_normal((population, 2)) * 0.5)
        self._features = np.hstack([normal, uniform, binary, skewed])
        self._continuous = np.r_[np.ones(18, dtype=bool), np.zeros(3, dtype=bool), np.ones(2, bool)]
        # The hidden truth: a sparse linear part on 9 features plus two interactions.
        weights = np.zeros(FEATURE_COUNT)
        informative = [0, 1, 2, 3, 5, 12, 13, 18, 21]
        weights[informative] = rng.choice([-1.0, 1.0], len(informative)) * rng.uniform(
            0.5, 1.0, len(informative)
        )
        self._weights = weights
        self._centre = self._features.mean(axis=0)
        self._spread = self._features.std(axis=0)
        raw = self._signal_raw(self._features)
        self._signal_mean = float(raw.mean())
        self._signal_sd = float(raw.std())

    def subject_id(self, index: int) -> str:
        return f"subject-{index:06d}"

    def features(self, index: int, rng: np.random.Generator) -> np.ndarray:
        """One visit's features for subject `index`: its own values, a little jittered."""
        base = self._features[index]
        jitter = rng.standard_normal(FEATURE_COUNT) * VISIT_JITTER * self._spread
        return np.where(self._continuous, base + jitter, base)

    def _signal_raw(self, features: np.ndarray) -> np.ndarray:
        x = (features - self._centre) / self._spread
        return x @ self._weights + 0.6 * x[..., 0] * x[..., 1] - 0.5 * np.abs(x[..., 4])

    def probability(self, features: np.ndarray) -> np.ndarray | float:
        """The hidden probability of a positive outcome (vectorized over rows)."""
        z = (self._signal_raw(np.asarray(features)) - self._signal_mean) / self._signal_sd
        p = 1.0 / (1.0 + np.exp(-(TRUTH_SLOPE * z + TRUTH_OFFSET)))
        return float(p) if np.ndim(p) == 0 else p

    def outcome(self, features: np.ndarray, rng: np.random.Generator) -> Outcome:
        """What happens when the app acts on a subject with these features."""
        p = float(self.probability(features))
        positive = bool(rng.random() < p)
        score = float(np.clip(p + rng.standard_normal() * OUTCOME_SCORE_NOISE, 0.0, 1.0))
        return Outcome(positive=positive, outcome_score=score, probability=p)
