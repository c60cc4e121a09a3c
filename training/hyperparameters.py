"""How a network is trained: the seed and the optimizer's knobs, one frozen value passed down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hyperparameters:
    seed: int = 42
    max_epochs: int = 100
    patience: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    # One thread keeps CPU results bit-for-bit reproducible from a lineage (and is fair on 2 cores).
    threads: int = 1
    # Validation loss above this multiple of the untrained network's loss counts as divergence.
    divergence_factor: float = 1e3
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
