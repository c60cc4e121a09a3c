"""The torch network a model type's spec describes: normalization, an MLP, and a sigmoid for BCE."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from contracts.model_types import ModelTypeSpec


class ScoringNetwork(nn.Module):
    """(x - mean) / scale -> Linear/ReLU ... -> Linear(1) [-> sigmoid], all in one graph."""

    feature_mean: torch.Tensor
    feature_scale: torch.Tensor

    def __init__(self, spec: ModelTypeSpec, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.sigmoid_output = spec.sigmoid_output
        # Buffers, not parameters: exported as constants, never trained, not in the parameter count.
        self.register_buffer("feature_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("feature_scale", torch.as_tensor(scale, dtype=torch.float32))
        sizes = [spec.feature_count, *spec.hidden_layers]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.body = nn.Sequential(*layers)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.body((features - self.feature_mean) / self.feature_scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        output = self.logits(features)
        return torch.sigmoid(output) if self.sigmoid_output else output

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def normalization(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the training features; a constant feature gets scale 1."""
    mean = features.astype(np.float64).mean(axis=0)
    std = features.astype(np.float64).std(axis=0)
    scale = np.where(std > 1e-12, std, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def build_network(spec: ModelTypeSpec, train_features: np.ndarray, seed: int) -> ScoringNetwork:
    """A freshly initialized network; the same seed gives the same initial weights."""
    torch.manual_seed(seed)
    mean, scale = normalization(train_features)
    return ScoringNetwork(spec, mean, scale)


def predict(network: ScoringNetwork, features: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """The network's outputs (n,) as float32, in eval mode, without gradients."""
    network.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, features.shape[0], batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size]))
            outputs.append(network(chunk).reshape(-1).numpy())
    if not outputs:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)


def configure_torch(threads: int) -> None:
    """Deterministic CPU torch: fixed thread count, deterministic kernels only."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
