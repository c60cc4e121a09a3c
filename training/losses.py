"""The losses every model is judged by, in float64 numpy: the same for torch and ONNX outputs."""

from __future__ import annotations

import numpy as np

from contracts.model_types import Loss

# Probabilities are clipped so that a confident wrong answer costs a large, finite loss.
PROBABILITY_EPSILON = 1e-7


def evaluation_loss(outputs: np.ndarray, targets: np.ndarray, loss: Loss) -> float:
    """Mean squared error, or binary cross-entropy of probabilities (the graph's sigmoid output)."""
    predicted = np.asarray(outputs, dtype=np.float64).reshape(-1)
    actual = np.asarray(targets, dtype=np.float64).reshape(-1)
    if predicted.shape != actual.shape:
        raise ValueError(f"{predicted.shape[0]} outputs for {actual.shape[0]} targets")
    if loss is Loss.MSE:
        return float(np.mean((predicted - actual) ** 2))
    clipped = np.clip(predicted, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return float(-np.mean(actual * np.log(clipped) + (1.0 - actual) * np.log1p(-clipped)))
