"""Helpers for the bring-your-own-trainer tests: YAML catalogs, datasets, hand-made ONNX graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from contracts.model_types import ModelTypeCatalog, ModelTypeSpec
from training.dataset import Dataset, DatasetBuilder
from training.synthetic import synthetic_samples

# Copies a prepared file to {output}: a "trainer" whose product the test chose.
COPY = "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])"


def catalog_from(tmp_path: Path, entries: list[dict[str, Any]]) -> ModelTypeCatalog:
    path = tmp_path / "model_types.yaml"
    path.write_text(yaml.safe_dump({"model_types": entries}))
    return ModelTypeCatalog.load(path)


def script_type(name: str, argv: list[str], target: str = "outcome_score", **trainer: Any) -> dict:
    return {
        "name": name,
        "feature_count": 23,
        "target": target,
        "loss": "mse" if target == "outcome_score" else "bce",
        "trainer": {"kind": "script", "argv": argv, **trainer},
    }


def dataset_for(spec: ModelTypeSpec, count: int, seed: int = 0) -> Dataset:
    builder = DatasetBuilder(spec)
    for s in synthetic_samples(count, "calling_score", spec.feature_count, seed=seed):
        builder.add(
            s["event_id"],
            s["features"],
            s["outcome_score"],
            s["positive_outcome"],
            s["occurred_at"],
        )
    return builder.build()


def linear_onnx(
    weights: np.ndarray,
    bias: float = 0.0,
    width: int | None = None,
    batch: int | str = "N",
    output_rank: int = 2,
) -> bytes:
    """features [batch, width] @ weights + bias -> score [batch, 1] (or [batch])."""
    width = width or len(weights)
    w = numpy_helper.from_array(np.asarray(weights, np.float32).reshape(width, 1), "w")
    b = numpy_helper.from_array(np.asarray([bias], np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["product"]),
        helper.make_node("Add", ["product", "b"], ["column"] if output_rank == 1 else ["score"]),
    ]
    initializers = [w, b]
    if output_rank == 1:
        initializers.append(numpy_helper.from_array(np.asarray([-1], np.int64), "flat"))
        nodes.append(helper.make_node("Reshape", ["column", "flat"], ["score"]))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, width])],
        [
            helper.make_tensor_value_info(
                "score", TensorProto.FLOAT, [batch, 1] if output_rank == 2 else [batch]
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def good_weights(width: int = 23) -> np.ndarray:
    return np.full(width, 0.01, np.float32)
