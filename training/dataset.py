"""Datasets as arrays: de-duplicated by event_id, a model type's target, a seeded split. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.model_types import ModelTypeSpec, Target
from training.errors import TooFewSamplesError


@dataclass(frozen=True)
class Dataset:
    """Rows in read order: features (n, f) float32 and the model type's target (n,) float32."""

    features: np.ndarray
    targets: np.ndarray
    duplicates: int = 0
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass
class DatasetBuilder:
    """Collects one model type's samples; keeps each event_id's first, skips malformed rows."""

    spec: ModelTypeSpec
    _seen: set[str] = field(default_factory=set)
    _features: list[Sequence[float]] = field(default_factory=list)
    _targets: list[float] = field(default_factory=list)
    duplicates: int = 0
    skipped: int = 0

    def add(
        self,
        event_id: str,
        features: Sequence[float],
        outcome_score: float,
        positive_outcome: bool,
    ) -> bool:
        """Add one sample; False when it was a duplicate or malformed (counted, never raised)."""
        if event_id in self._seen:
            self.duplicates += 1
            return False
        try:
            target = (
                float(outcome_score)
                if self.spec.target is Target.OUTCOME_SCORE
                else float(_as_bool(positive_outcome))
            )
        except (TypeError, ValueError):
            self.skipped += 1
            return False
        if (
            not isinstance(features, list | tuple)
            or len(features) != self.spec.feature_count
            or not math.isfinite(target)
        ):
            self.skipped += 1
            return False
        self._seen.add(event_id)
        self._features.append(features)
        self._targets.append(target)
        return True

    def skip(self) -> None:
        self.skipped += 1

    def build(self) -> Dataset:
        width = self.spec.feature_count
        rows, values = self._features, self._targets
        try:
            features = np.asarray(rows, dtype=np.float32).reshape(len(values), width)
        except (TypeError, ValueError):
            # Slow path: some row holds a non-number; drop those rows, keep the rest.
            keep = [i for i, row in enumerate(rows) if _numeric(row)]
            self.skipped += len(rows) - len(keep)
            rows, values = [rows[i] for i in keep], [values[i] for i in keep]
            features = np.asarray(rows, dtype=np.float32).reshape(len(values), width)
        targets = np.asarray(values, dtype=np.float32)
        finite = np.isfinite(features).all(axis=1)
        skipped = self.skipped + int((~finite).sum())
        if not finite.all():
            features, targets = features[finite], targets[finite]
        return Dataset(features, targets, duplicates=self.duplicates, skipped=skipped)


def _as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"positive_outcome {value!r} is not a boolean")
    return value


def _numeric(row: Sequence[object]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)


@dataclass(frozen=True)
class Split:
    train: Dataset
    validation: Dataset
    test: Dataset


def require_samples(dataset: Dataset, minimum: int) -> None:
    """A dataset smaller than the setting (or too small to split in three) is a rejection."""
    needed = max(minimum, 3)
    if len(dataset) < needed:
        raise TooFewSamplesError(
            f"{len(dataset)} usable samples, at least {needed} needed "
            f"({dataset.duplicates} duplicates, {dataset.skipped} malformed dropped)"
        )


def split_dataset(
    dataset: Dataset, seed: int, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> Split:
    """Shuffle with the seed, then cut test, validation, train (same seed, same cut)."""
    count = len(dataset)
    order = np.random.default_rng(seed).permutation(count)
    test_size = max(1, round(count * test_fraction))
    validation_size = max(1, round(count * validation_fraction))
    if test_size + validation_size >= count:
        raise TooFewSamplesError(f"{count} samples cannot be split into train, validation and test")

    def take(indices: np.ndarray) -> Dataset:
        return Dataset(dataset.features[indices], dataset.targets[indices])

    return Split(
        train=take(order[test_size + validation_size :]),
        validation=take(order[test_size : test_size + validation_size]),
        test=take(order[:test_size]),
    )
