"""Training one network: Adam on seeded mini-batches, early stopping on validation loss."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from contracts.model_types import Loss, ModelTypeSpec
from training.dataset import Split
from training.errors import TrainingDivergedError
from training.hyperparameters import Hyperparameters
from training.losses import evaluation_loss
from training.network import ScoringNetwork, build_network, configure_torch, predict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    max_epochs: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    improved: bool


@dataclass(frozen=True)
class FitResult:
    network: ScoringNetwork
    metrics: dict[str, Any]
    epochs_run: int
    early_stopping_epoch: int | None


EpochCallback = Callable[[EpochReport], None]


def batch_loss(
    network: ScoringNetwork, x: torch.Tensor, y: torch.Tensor, loss: Loss
) -> torch.Tensor:
    if loss is Loss.MSE:
        return F.mse_loss(network(x).reshape(-1), y)
    # On logits: the same objective as BCE on the sigmoid output, without its overflow.
    return F.binary_cross_entropy_with_logits(network.logits(x).reshape(-1), y)


def _validation_loss(network: ScoringNetwork, split: Split, loss: Loss) -> float:
    return evaluation_loss(
        predict(network, split.validation.features), split.validation.targets, loss
    )


def fit(
    spec: ModelTypeSpec,
    split: Split,
    hyper: Hyperparameters,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train from the seed; stop after `patience` epochs without improvement; keep the best."""
    configure_torch(hyper.threads)
    network = build_network(spec, split.train.features, hyper.seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=hyper.learning_rate)
    shuffle = torch.Generator().manual_seed(hyper.seed)
    x_train = torch.from_numpy(np.ascontiguousarray(split.train.features))
    y_train = torch.from_numpy(np.ascontiguousarray(split.train.targets))
    count = x_train.shape[0]

    initial_val_loss = _validation_loss(network, split, spec.loss)
    divergence_limit = hyper.divergence_factor * max(initial_val_loss, 1e-6)
    best_val_loss = math.inf
    best_state = copy.deepcopy(network.state_dict())
    stale = 0
    early_stopping_epoch: int | None = None
    epoch = 0
    for epoch in range(1, hyper.max_epochs + 1):
        network.train()
        order = torch.randperm(count, generator=shuffle)
        total = 0.0
        for start in range(0, count, hyper.batch_size):
            index = order[start : start + hyper.batch_size]
            loss = batch_loss(network, x_train[index], y_train[index], spec.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * index.shape[0]
        train_loss = total / count
        val_loss = _validation_loss(network, split, spec.loss)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise TrainingDivergedError(
                f"non-finite loss at epoch {epoch} (train {train_loss}, validation {val_loss})"
            )
        # The training loss (on logits for BCE) is unbounded, the clipped validation BCE is not.
        if max(train_loss, val_loss) > divergence_limit:
            raise TrainingDivergedError(
                f"loss (train {train_loss:.6g}, validation {val_loss:.6g}) at epoch {epoch} exceeds "
                f"{hyper.divergence_factor:g}x the untrained network's {initial_val_loss:.6g}"
            )
        improved = val_loss < best_val_loss
        if improved:
            best_val_loss, stale = val_loss, 0
            best_state = copy.deepcopy(network.state_dict())
        else:
            stale += 1
        report = EpochReport(epoch, hyper.max_epochs, train_loss, val_loss, best_val_loss, improved)
        log.info(
            "epoch %d/%d model_type=%s train_loss=%.6f val_loss=%.6f best=%.6f",
            epoch,
            hyper.max_epochs,
            spec.name,
            train_loss,
            val_loss,
            best_val_loss,
        )
        if on_epoch is not None:
            on_epoch(report)
        if stale >= hyper.patience:
            early_stopping_epoch = epoch
            break

    network.load_state_dict(best_state)
    network.eval()
    metrics: dict[str, Any] = {
        "train_loss": evaluation_loss(
            predict(network, split.train.features), split.train.targets, spec.loss
        ),
        "val_loss": _validation_loss(network, split, spec.loss),
        "test_loss": evaluation_loss(
            predict(network, split.test.features), split.test.targets, spec.loss
        ),
        "early_stopping_epoch": early_stopping_epoch,
        "parameters": network.parameter_count(),
        "train_samples": len(split.train),
        "val_samples": len(split.validation),
        "test_samples": len(split.test),
        "epochs_run": epoch,
        "seed": hyper.seed,
    }
    return FitResult(network, metrics, epoch, early_stopping_epoch)


def warm_up(spec: ModelTypeSpec, threads: int = 1) -> None:
    """One tiny fit, so a long-running worker pays torch's lazy first-step setup (~2 s) at start."""
    from training.dataset import Dataset

    rows = np.random.default_rng(0).normal(size=(12, spec.feature_count)).astype(np.float32)
    tiny = Dataset(rows[:8], np.full(8, 0.5, np.float32))
    split = Split(
        tiny,
        Dataset(rows[8:10], np.full(2, 0.5, np.float32)),
        Dataset(rows[10:], np.full(2, 0.5, np.float32)),
    )
    fit(spec, split, Hyperparameters(max_epochs=1, batch_size=4, threads=threads))
