"""A `python` trainer plugin: least squares in numpy, returned as a torch module relearn exports.

relearn calls `fit(data, spec)` in-process (examples/model_types.yaml, kind: python) with the
window's train and validation rows as numpy arrays; the test rows stay with relearn. Return
ONNX bytes, or a torch module, optionally with a dict of metrics you measured yourself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def fit(data: Any, spec: Any) -> tuple[torch.nn.Module, dict[str, float]]:
    x = np.hstack([data.train_features, np.ones((len(data.train_features), 1), np.float32)])
    ridge = 1e-3 * np.eye(x.shape[1])
    weights = np.linalg.solve(x.T @ x + ridge, x.T @ data.train_targets)

    layer = torch.nn.Linear(spec.feature_count, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weights[:-1].astype(np.float32)).reshape(1, -1))
        layer.bias.fill_(float(weights[-1]))

    def loss(features: np.ndarray, targets: np.ndarray) -> float:
        predicted = features @ weights[:-1] + weights[-1]
        return float(np.mean((predicted - targets) ** 2))

    return layer, {
        "train_loss": loss(data.train_features, data.train_targets),
        "val_loss": loss(data.validation_features, data.validation_targets),
        "parameters": spec.feature_count + 1,
    }
