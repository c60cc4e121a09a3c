"""Retraining from a recorded lineage: the same offsets, seed and hyperparameters give the same metrics."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from contracts.events import Lineage
from training.hyperparameters import Hyperparameters
from training.network import ScoringNetwork
from training.pipeline import TrainingPipeline
from training.samples import SampleSource

log = logging.getLogger(__name__)

COMPARED = (
    "train_loss",
    "val_loss",
    "test_loss",
    "early_stopping_epoch",
    "parameters",
    "train_samples",
    "val_samples",
    "test_samples",
)


@dataclass(frozen=True)
class Reproduction:
    recorded: dict[str, Any]
    reproduced: dict[str, Any]
    network: ScoringNetwork  # the retrained torch model, to compare with the stored artifact

    @property
    def differences(self) -> dict[str, tuple[Any, Any]]:
        return {
            key: (self.recorded.get(key), self.reproduced.get(key))
            for key in COMPARED
            if key in self.recorded and self.recorded.get(key) != self.reproduced.get(key)
        }

    @property
    def exact(self) -> bool:
        return not self.differences


def recorded_hyperparameters(metrics: dict[str, Any], lineage: Lineage) -> Hyperparameters:
    """The hyperparameters a version was trained with (stored in its metrics), seeded from its lineage."""
    stored = metrics.get("hyperparameters") or {}
    known = {f.name for f in dataclasses.fields(Hyperparameters)}
    values = {k: v for k, v in stored.items() if k in known}
    values["seed"] = lineage.seed
    return Hyperparameters(**values)


def reproduce(
    pipeline: TrainingPipeline,
    model_type: str,
    lineage: Lineage,
    recorded_metrics: dict[str, Any],
    samples: SampleSource,
) -> Reproduction:
    """Read exactly the lineage's offsets and train again with the recorded hyperparameters."""
    spec = pipeline.spec_for(model_type)
    hyper = recorded_hyperparameters(recorded_metrics, lineage)
    replay = TrainingPipeline(
        pipeline.catalog,
        dataclasses.replace(pipeline.config, hyper=hyper, min_samples=3),
        pipeline.production,
        faults=None,  # a reproduction never consumes a fault meant for the next command
    )
    offsets = {int(p): (int(r[0]), int(r[1])) for p, r in lineage.offsets.items()}
    read = samples.read_offsets(spec, offsets)
    _, result = replay.train(spec, read.dataset)
    log.info("reproduced model_type=%s from %s offsets %s", model_type, lineage.topic, offsets)
    return Reproduction(dict(recorded_metrics), dict(result.metrics), result.network)
