"""Shared helpers for training's tests: small synthetic datasets and quick hyperparameters."""

from __future__ import annotations

import pytest
import torch

from contracts.model_types import BUILT_IN, ModelTypeCatalog, ModelTypeSpec
from training.dataset import Dataset, DatasetBuilder
from training.hyperparameters import Hyperparameters
from training.pipeline import PipelineConfig
from training.synthetic import synthetic_samples

torch.set_num_threads(1)

QUICK = Hyperparameters(seed=7, max_epochs=6, patience=3, batch_size=64, learning_rate=3e-3)


def spec_of(name: str) -> ModelTypeSpec:
    spec = ModelTypeCatalog(BUILT_IN).get(name)
    assert spec is not None
    return spec


def dataset_of(name: str, count: int, seed: int = 0) -> Dataset:
    spec = spec_of(name)
    builder = DatasetBuilder(spec)
    for sample in synthetic_samples(count, name, spec.feature_count, seed=seed):
        builder.add(
            sample["event_id"],
            sample["features"],
            sample["outcome_score"],
            sample["positive_outcome"],
        )
    return builder.build()


@pytest.fixture
def quick_config() -> PipelineConfig:
    return PipelineConfig(hyper=QUICK, min_samples=100, gate_tolerance=0.05)
