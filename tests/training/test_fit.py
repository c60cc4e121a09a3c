"""Training: reproducible from the seed, early stopping, parameter count, divergence."""

from __future__ import annotations

import dataclasses

import pytest

from tests.training.conftest import QUICK, dataset_of, spec_of
from training.dataset import split_dataset
from training.errors import RejectionReason, TrainingDivergedError
from training.fit import EpochReport, fit


def test_same_seed_same_metrics_and_reported_epochs() -> None:
    split = split_dataset(dataset_of("calling_score", 400), QUICK.seed)
    reports: list[EpochReport] = []
    first = fit(spec_of("calling_score"), split, QUICK, reports.append)
    again = fit(spec_of("calling_score"), split, QUICK)
    assert first.metrics == again.metrics
    assert first.metrics["parameters"] == 13441
    assert [r.epoch for r in reports] == list(range(1, first.epochs_run + 1))
    assert first.metrics["test_loss"] < 0.1  # it learned something (targets have variance ~0.05+)


def test_early_stopping_is_reported_with_its_epoch() -> None:
    split = split_dataset(dataset_of("outcome_prediction", 300), 1)
    hyper = dataclasses.replace(QUICK, max_epochs=200, patience=2, learning_rate=2e-2)
    reports: list[EpochReport] = []
    result = fit(spec_of("outcome_prediction"), split, hyper, reports.append)
    assert result.early_stopping_epoch is not None and result.early_stopping_epoch < 200
    assert result.metrics["early_stopping_epoch"] == result.early_stopping_epoch == len(reports)
    assert all(not r.improved for r in reports[-hyper.patience :])
    # the best epoch's weights are kept: the final validation loss is the best seen, not the last
    assert result.metrics["val_loss"] == min(r.val_loss for r in reports)


@pytest.mark.parametrize("model_type", ["calling_score", "outcome_prediction"])
def test_divergence_is_a_rejection(model_type: str) -> None:
    split = split_dataset(dataset_of(model_type, 300), 1)
    hyper = dataclasses.replace(QUICK, learning_rate=1e6, max_epochs=5)
    with pytest.raises(TrainingDivergedError) as caught:
        fit(spec_of(model_type), split, hyper)
    assert caught.value.reason is RejectionReason.DIVERGED
