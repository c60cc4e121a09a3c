"""Synthetic training samples with a known ground truth, for tests, benchmarks and examples."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np


def synthetic_samples(
    count: int,
    model_type: str = "calling_score",
    feature_count: int = 23,
    seed: int = 0,
    occurred_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Samples shaped like training-samples records: outcome_score = sigmoid(features . w + noise)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 0.6, feature_count)
    features = rng.normal(0.0, 1.0, (count, feature_count)) * 2.0 + 1.0
    logits = (features - 1.0) @ weights / 2.0 + rng.normal(0.0, 0.3, count)
    scores = 1.0 / (1.0 + np.exp(-logits))
    positives = rng.random(count) < scores
    stamp = (occurred_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    namespace = uuid.UUID(int=seed)
    return [
        {
            "event_id": str(uuid.uuid5(namespace, str(i))),
            "model_type": model_type,
            "model_version": "v0.0",
            "features": [round(float(v), 6) for v in features[i]],
            "prediction": 0.5,
            "outcome_score": round(float(scores[i]), 6),
            "positive_outcome": bool(positives[i]),
            "occurred_at": stamp,
        }
        for i in range(count)
    ]
