"""The manual path's input: samples from a JSON file (a list of outcome-shaped objects) or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from contracts.model_types import ModelTypeSpec
from training.dataset import Dataset, DatasetBuilder
from training.errors import InvalidDataError


def load_samples(path: Path, spec: ModelTypeSpec) -> Dataset:
    """Rows of this model type (rows naming another type are left out); by extension .parquet or JSON."""
    if not path.exists():
        raise InvalidDataError(f"no such file: {path}")
    rows = _parquet_rows(path) if path.suffix.lower() in {".parquet", ".pq"} else _json_rows(path)
    builder = DatasetBuilder(spec)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            builder.skip()
            continue
        if row.get("model_type", spec.name) != spec.name:
            continue
        features = row.get("features")
        if features is not None and not isinstance(features, list | tuple):
            features = list(features)
        event_id = row.get("event_id")
        builder.add(
            str(event_id) if event_id else f"row-{index}",
            features,  # type: ignore[arg-type]
            row.get("outcome_score"),  # type: ignore[arg-type]
            row.get("positive_outcome"),  # type: ignore[arg-type]
            row.get("occurred_at"),
        )
    return builder.build()


def _json_rows(path: Path) -> list[Any]:
    raw = path.read_bytes()
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # JSON lines: one sample per line.
        try:
            return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise InvalidDataError(f"{path} is neither JSON nor JSON lines: {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("samples"), list):
        return list(document["samples"])
    if not isinstance(document, list):
        raise InvalidDataError(f"{path}: expected a JSON list of samples")
    return document


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InvalidDataError(f"{path} is not a readable Parquet file: {exc}") from exc
    missing = {"features"} - set(table.column_names)
    if missing:
        raise InvalidDataError(f"{path}: Parquet columns {sorted(missing)} missing")
    return table.to_pylist()


def write_parquet(path: Path, samples: list[dict[str, Any]]) -> None:
    """Samples to Parquet (features as a list<double> column); used by tests and examples."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(samples), path)
