"""ONNX export with a dynamic batch, and its proof: checker, signature, finite outputs, parity."""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch

from contracts.model_types import ModelTypeSpec
from training.errors import ExportFailedError, ParityFailedError
from training.network import ScoringNetwork

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
# Stated tolerance: |onnxruntime - torch| <= atol + rtol * |torch| on every held-out row.
PARITY_ATOL = 1e-5
PARITY_RTOL = 1e-4


@dataclass(frozen=True)
class ProvenModel:
    """ONNX bytes that passed every check, with the signature model-deployed reports."""

    onnx: bytes
    sha256: str
    size_bytes: int
    opset: int
    input_name: str
    input_shape: list[int | None]
    output_name: str
    output_shape: list[int | None]
    rows_checked: int
    max_abs_diff: float


def export_onnx(network: ScoringNetwork, spec: ModelTypeSpec, opset: int = DEFAULT_OPSET) -> bytes:
    """Serialize the network (normalization and sigmoid included) with a dynamic batch dimension."""
    network.eval()
    example = torch.zeros(1, spec.feature_count, dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated upstream but exports this MLP in ~0.1 s, while the
        # dynamo exporter takes seconds; the proof below checks the result either way.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object works; the stub says path
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def _shape(value_info: onnx.ValueInfoProto) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def session_for(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def score_onnx(onnx_bytes: bytes, features: np.ndarray) -> np.ndarray:
    """Run an ONNX scoring model on rows (n, f); returns (n,) float32."""
    session = session_for(onnx_bytes)
    (model_input,) = session.get_inputs()
    (output,) = session.run(None, {model_input.name: np.ascontiguousarray(features, np.float32)})
    return np.asarray(output, dtype=np.float32).reshape(-1)


def input_width(onnx_bytes: bytes) -> int | None:
    """The fixed feature count an ONNX model expects, or None when it is not a single 2-D input."""
    graph = onnx.load_from_string(onnx_bytes).graph
    inputs = [i for i in graph.input if i.name not in {init.name for init in graph.initializer}]
    if len(inputs) != 1:
        return None
    shape = _shape(inputs[0])
    return shape[1] if len(shape) == 2 else None


def check_signature(model: onnx.ModelProto, spec: ModelTypeSpec) -> None:
    """One float input [batch, feature_count], one float output [batch, 1], named per the spec."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    expected = {
        "input": (spec.input_name, [None, spec.feature_count]),
        "output": (spec.output_name, [None, 1]),
    }
    for role, values in (("input", inputs), ("output", list(graph.output))):
        name, shape = expected[role]
        if len(values) != 1:
            raise ExportFailedError(f"signature: {len(values)} graph {role}s, expected 1")
        (value,) = values
        elem_type = value.type.tensor_type.elem_type
        if value.name != name:
            raise ExportFailedError(f"signature: {role} is named {value.name!r}, expected {name!r}")
        if elem_type != onnx.TensorProto.FLOAT:
            raise ExportFailedError(
                f"signature: {role} dtype {onnx.TensorProto.DataType.Name(elem_type)}, not FLOAT"
            )
        if _shape(value) != shape:
            raise ExportFailedError(f"signature: {role} shape {_shape(value)}, expected {shape}")


def prove_onnx(
    onnx_bytes: bytes,
    spec: ModelTypeSpec,
    rows: np.ndarray,
    expected: np.ndarray,
    atol: float = PARITY_ATOL,
    rtol: float = PARITY_RTOL,
) -> ProvenModel:
    """Every check before a model is stored; raises ExportFailedError naming the first failure."""
    try:
        model = onnx.load_from_string(onnx_bytes)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises several types; each means "not a valid model"
        raise ExportFailedError(f"onnx.checker: {exc}") from exc
    check_signature(model, spec)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    try:
        session = session_for(onnx_bytes)
        outputs = [
            session.run(None, {spec.input_name: np.ascontiguousarray(batch, np.float32)})[0]
            for batch in (rows[:1], rows)  # batch 1 and batch n: the batch dimension is dynamic
        ]
    except Exception as exc:  # onnxruntime raises its own exception types on load or run
        raise ExportFailedError(f"onnxruntime could not run the model: {exc}") from exc
    single, full = (np.asarray(o, dtype=np.float32) for o in outputs)
    if full.shape != (rows.shape[0], 1) or single.shape != (1, 1):
        raise ExportFailedError(
            f"output shapes {single.shape} and {full.shape} for batches 1 and n"
        )
    if not np.isfinite(full).all():
        raise ExportFailedError("non-finite outputs on held-out rows")
    if spec.sigmoid_output and ((full < 0).any() or (full > 1).any()):
        raise ExportFailedError("probability outputs outside [0, 1]")

    reference = np.asarray(expected, dtype=np.float32).reshape(-1)
    got = full.reshape(-1)
    diff = np.abs(got.astype(np.float64) - reference)
    max_abs_diff = float(diff.max()) if diff.size else 0.0
    within = diff <= atol + rtol * np.abs(reference.astype(np.float64))
    if not within.all() or abs(float(single[0, 0]) - float(got[0])) > atol + rtol * abs(
        float(got[0])
    ):
        worst = int(np.argmax(diff))
        raise ParityFailedError(
            f"onnxruntime differs from torch on {int((~within).sum())}/{len(got)} held-out rows "
            f"(max |diff| {max_abs_diff:.3g} at row {worst}; tolerance {atol:g} + {rtol:g}*|torch|)"
        )
    return ProvenModel(
        onnx=onnx_bytes,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        size_bytes=len(onnx_bytes),
        opset=opset,
        input_name=spec.input_name,
        input_shape=[None, spec.feature_count],
        output_name=spec.output_name,
        output_shape=[None, 1],
        rows_checked=len(got),
        max_abs_diff=max_abs_diff,
    )
