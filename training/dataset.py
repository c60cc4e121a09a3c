"""Datasets as arrays: de-duplicated by event_id, a model type's target, a seeded split. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.model_types import ModelTypeSpec, Target
from contracts.trainer_config import TrainerKind
from training.errors import TooFewSamplesError


@dataclass(frozen=True)
class Dataset:
    """Rows in read order: features (n, f) float32 and the model type's target (n,) float32."""

    features: np.ndarray
    targets: np.ndarray
    duplicates: int = 0
    skipped: int = 0
    # Per-row event_id, outcome_score, positive_outcome, occurred_at: kept only for a team's own
    # trainer, whose data file carries them (DESIGN.md); the builtin path never pays for them.
    details: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def take(self, indices: np.ndarray) -> Dataset:
        details = None
        if self.details is not None:
            details = {name: column[indices] for name, column in self.details.items()}
        return Dataset(self.features[indices], self.targets[indices], details=details)


@dataclass
class DatasetBuilder:
    """Collects one model type's samples; keeps each event_id's first, skips malformed rows."""

    spec: ModelTypeSpec
    _seen: set[str] = field(default_factory=set)
    _features: list[Sequence[float]] = field(default_factory=list)
    _targets: list[float] = field(default_factory=list)
    _details: list[tuple[object, ...]] | None = None
    duplicates: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        # Looked up once: add() runs for every record read (100k+ per command).
        self._width = self.spec.feature_count
        self._score_target = self.spec.target is Target.OUTCOME_SCORE
        if self.spec.trainer.kind is not TrainerKind.BUILTIN:
            self._details = []

    def add(
        self,
        event_id: str,
        features: Sequence[float],
        outcome_score: float,
        positive_outcome: bool,
        occurred_at: object = None,
    ) -> bool:
        """Add one sample; False when it was a duplicate or malformed (counted, never raised).
        Non-finite values are dropped in build(), vectorized."""
        if event_id in self._seen:
            self.duplicates += 1
            return False
        if self._score_target:
            target = outcome_score
            kind = type(target)
            if kind is not float and (kind is bool or kind is not int):
                self.skipped += 1
                return False
        elif type(positive_outcome) is bool:
            target = 1.0 if positive_outcome else 0.0
        else:
            self.skipped += 1
            return False
        container = type(features)
        if (container is not list and container is not tuple) or len(features) != self._width:
            self.skipped += 1
            return False
        self._seen.add(event_id)
        self._features.append(features)
        self._targets.append(target)
        if self._details is not None:
            self._details.append((event_id, outcome_score, positive_outcome, occurred_at))
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
            if self._details is not None:
                self._details = [self._details[i] for i in keep]
            features = np.asarray(rows, dtype=np.float32).reshape(len(values), width)
        targets = np.asarray(values, dtype=np.float32)
        finite = np.isfinite(features).all(axis=1) & np.isfinite(targets)
        skipped = self.skipped + int((~finite).sum())
        details = _columns(self._details, len(values)) if self._details is not None else None
        if not finite.all():
            features, targets = features[finite], targets[finite]
            if details is not None:
                details = {name: column[finite] for name, column in details.items()}
        return Dataset(
            features, targets, duplicates=self.duplicates, skipped=skipped, details=details
        )


DETAIL_COLUMNS = ("event_id", "outcome_score", "positive_outcome", "occurred_at")


def _columns(rows: list[tuple[object, ...]], count: int) -> dict[str, np.ndarray]:
    # fromiter, not asarray: a value that is itself a list must stay one object, not a dimension.
    return {
        name: np.fromiter((row[i] for row in rows), dtype=object, count=count)
        for i, name in enumerate(DETAIL_COLUMNS)
    }


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

    return Split(
        train=dataset.take(order[test_size + validation_size :]),
        validation=dataset.take(order[test_size : test_size + validation_size]),
        test=dataset.take(order[:test_size]),
    )
