"""The hostile world's outcome delays: positives reported soon, negatives when the window closes (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from contracts.model_types import ModelTypeCatalog


@dataclass(frozen=True)
class OutcomeDelays:
    """Seconds from serving a prediction to its outcome being known, per model type.

    A positive is known within the first `positive_fraction` of the model type's
    `outcome_window_seconds` (uniformly), a negative only when the window closes: the shape that
    makes a test counting outcomes by arrival favour whatever was served last.
    """

    windows: Mapping[str, float] = field(default_factory=dict)  # model type -> window seconds
    positive_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction must be in (0, 1], got {self.positive_fraction}")
        for model_type, window in self.windows.items():
            if not (math.isfinite(window) and window > 0):
                raise ValueError(f"{model_type}: outcome window must be > 0, got {window}")

    @classmethod
    def of(
        cls, catalog: ModelTypeCatalog, model_types: Iterable[str], positive_fraction: float
    ) -> OutcomeDelays:
        """The configured windows of `model_types` (each must be in the catalog)."""
        windows = {}
        for name in model_types:
            spec = catalog.get(name)
            if spec is None:
                raise ValueError(f"unknown model type {name}")
            windows[name] = spec.outcome_window_seconds
        return cls(windows, positive_fraction)

    def delay(self, model_type: str, positive: bool, u: float) -> float:
        """The delay of one outcome; `u` is a uniform draw in [0, 1)."""
        window = self.windows[model_type]
        return u * self.positive_fraction * window if positive else window
