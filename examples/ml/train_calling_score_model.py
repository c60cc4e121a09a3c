"""Trains the calling score model with scikit-learn and exports it with skl2onnx (a team's own script).

Written the way the original training scripts were: `--data` (a JSON list of samples, or
.parquet) in, `--output` (an ONNX file) out, the metrics printed as lines relearn reads:
`Test Loss: 0.0257`, `Val Loss: ...`, `Train Loss: ...`, `Early stopping at epoch N`,
`N parameters`. relearn runs it through examples/model_types.yaml (kind: script).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        rows = json.loads(path.read_text())
    features = np.asarray([row["features"] for row in rows], dtype=np.float32)
    targets = np.asarray([row["outcome_score"] for row in rows], dtype=np.float32)
    return features, targets


def mse(model: object, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((model.predict(x) - y) ** 2))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model", choices=["gbm", "linear"], default="gbm")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    features, targets = load(args.data)
    order = np.random.default_rng(args.seed).permutation(len(targets))
    test_size = val_size = max(1, len(order) // 10)
    test, val, train = np.split(order, [test_size, test_size + val_size])
    print(f"Loaded {len(targets)} samples: {len(train)} train, {len(val)} val, {len(test)} test")

    if args.model == "linear":
        model = Ridge(alpha=1.0).fit(features[train], targets[train])
        parameters = model.coef_.size + 1
        stopped_at = None
    else:
        model = GradientBoostingRegressor(
            n_estimators=100,
            learning_rate=0.1,
            max_depth=3,
            subsample=0.8,
            validation_fraction=0.1,
            n_iter_no_change=10,  # early stopping on the last 10% of the training rows
            random_state=args.seed,
        ).fit(features[train], targets[train])
        parameters = sum(tree.tree_.node_count for tree in model.estimators_[:, 0])
        stopped_at = model.n_estimators_ if model.n_estimators_ < model.n_estimators else None

    print(f"Test Loss: {mse(model, features[test], targets[test]):.4f}")
    print(f"Val Loss: {mse(model, features[val], targets[val]):.4f}")
    print(f"Train Loss: {mse(model, features[train], targets[train]):.4f}")
    if stopped_at is not None:
        print(f"Early stopping at epoch {stopped_at}")
    print(f"{parameters} parameters")

    onnx_model = convert_sklearn(
        model,
        initial_types=[("features", FloatTensorType([None, features.shape[1]]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    args.output.write_bytes(onnx_model.SerializeToString())
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
