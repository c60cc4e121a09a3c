"""The window's rows as a team's script reads them: a JSON array of sample objects, or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from contracts.model_types import ModelTypeSpec, Target
from training.dataset import Dataset


def _records(dataset: Dataset, spec: ModelTypeSpec) -> list[dict[str, Any]]:
    details = dataset.details or {}
    count = len(dataset)
    none = np.full(count, None, dtype=object)
    event_ids = details.get("event_id", np.array([f"row-{i}" for i in range(count)], dtype=object))
    occurred = details.get("occurred_at", none)
    # The target column always holds what relearn trains on, whatever else the row carried.
    target: list[float] = dataset.targets.tolist()
    scores: list[Any] = (
        target
        if spec.target is Target.OUTCOME_SCORE
        else details.get("outcome_score", none).tolist()
    )
    positives: list[Any] = (
        [t >= 0.5 for t in target]
        if spec.target is Target.POSITIVE_OUTCOME
        else details.get("positive_outcome", none).tolist()
    )
    features = dataset.features
    return [
        {
            "event_id": event_ids[i],
            "features": features[i],
            "outcome_score": scores[i],
            "positive_outcome": positives[i],
            "occurred_at": occurred[i],
        }
        for i in range(count)
    ]


def write_json(path: Path, dataset: Dataset, spec: ModelTypeSpec) -> None:
    """One object per sample: event_id, features, outcome_score, positive_outcome, occurred_at."""
    path.write_bytes(orjson.dumps(_records(dataset, spec), option=orjson.OPT_SERIALIZE_NUMPY))


def write_parquet(path: Path, dataset: Dataset, spec: ModelTypeSpec) -> None:
    """The same columns as the JSON file; features as a list<float> column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = _records(dataset, spec)
    columns = {
        name: [r[name] for r in records]
        for name in ("event_id", "outcome_score", "positive_outcome", "occurred_at")
    }
    width = dataset.features.shape[1]
    flat = pa.array(np.ascontiguousarray(dataset.features).reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(len(dataset) + 1, dtype=np.int32) * width)
    table = pa.table(
        {
            "event_id": pa.array([str(v) for v in columns["event_id"]]),
            "features": pa.ListArray.from_arrays(offsets, flat),
            "outcome_score": pa.array(columns["outcome_score"], type=pa.float64()),
            "positive_outcome": pa.array(columns["positive_outcome"], type=pa.bool_()),
            "occurred_at": pa.array(
                [None if v is None else str(v) for v in columns["occurred_at"]], type=pa.string()
            ),
        }
    )
    pq.write_table(table, path)
