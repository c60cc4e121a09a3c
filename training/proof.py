"""The proof of an ONNX file relearn did not export itself: checker, signature, finite, batch-stable."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import onnx

from contracts.model_types import ModelTypeSpec
from training.errors import RejectionReason, TrainerRejectedError
from training.export import ProvenModel, session_for

log = logging.getLogger(__name__)

# A row scored alone must equal the same row scored in the full batch within this.
BATCH_ATOL = 1e-5
BATCH_RTOL = 1e-4
BATCH_ROWS = 32  # rows re-scored one by one


def _reject(reason: RejectionReason, detail: str) -> TrainerRejectedError:
    return TrainerRejectedError(detail, reason=reason)


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    """Each dimension: its fixed size, its symbolic name, or None when unnamed."""
    if not value.type.HasField("tensor_type"):
        return []
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in value.type.tensor_type.shape.dim
    ]


def _signature(model: onnx.ModelProto, spec: ModelTypeSpec) -> tuple[str, str, int]:
    """(input name, output name, output rank) of a float [N, F] -> [N] or [N, 1] graph."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise _reject(
            RejectionReason.WRONG_SIGNATURE,
            f"{len(inputs)} inputs and {len(graph.output)} outputs; expected one of each",
        )
    (given,), (output,) = inputs, graph.output
    for role, value in (("input", given), ("output", output)):
        elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
        if elem != onnx.TensorProto.FLOAT:
            name = onnx.TensorProto.DataType.Name(elem) if elem else "not a tensor"
            raise _reject(
                RejectionReason.WRONG_SIGNATURE, f"{role} {value.name!r} is {name}, not float32"
            )
    shape = _dims(given)
    if len(shape) != 2 or shape[1] != spec.feature_count:
        raise _reject(
            RejectionReason.WRONG_SIGNATURE,
            f"input {given.name!r} has shape {shape}; expected [N, {spec.feature_count}]"
            + (f" ({', '.join(spec.features)})" if spec.features else ""),
        )
    out_shape = _dims(output)
    if len(out_shape) not in (1, 2) or (len(out_shape) == 2 and out_shape[1] != 1):
        raise _reject(
            RejectionReason.WRONG_SIGNATURE,
            f"output {output.name!r} has shape {out_shape}; expected [N] or [N, 1]",
        )
    for role, dims in (("input", shape), ("output", out_shape)):
        if isinstance(dims[0], int):
            raise _reject(
                RejectionReason.WRONG_SIGNATURE,
                f"the {role}'s batch dimension is fixed at {dims[0]}; it must be dynamic",
            )
    return given.name, output.name, len(out_shape)


def prove_artifact(onnx_bytes: bytes, spec: ModelTypeSpec, rows: np.ndarray) -> ProvenModel:
    """Every check before a team's model is stored; raises TrainerRejectedError with the reason."""
    if not onnx_bytes:
        raise _reject(RejectionReason.NO_OUTPUT, "the trainer wrote an empty file")
    try:
        model = onnx.load_from_string(onnx_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends: not a model at all
        raise _reject(RejectionReason.NOT_ONNX, f"not an ONNX model: {exc}") from exc
    if not model.graph.node and not model.graph.output:
        # protobuf parses many byte strings as an empty message: that is not a model either
        raise _reject(RejectionReason.NOT_ONNX, "not an ONNX model: an empty graph")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises several types; each means "not a valid model"
        raise _reject(RejectionReason.NOT_ONNX, f"onnx.checker: {exc}") from exc
    input_name, output_name, output_rank = _signature(model, spec)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    try:
        session = session_for(onnx_bytes)
        (full,) = session.run(None, {input_name: rows})
        singles = [
            session.run(None, {input_name: rows[i : i + 1]})[0]
            for i in range(min(BATCH_ROWS, len(rows)))
        ]
    except Exception as exc:  # onnxruntime raises its own types on load or run
        raise _reject(RejectionReason.NOT_ONNX, f"onnxruntime could not run it: {exc}") from exc
    full = np.asarray(full)
    if full.shape not in ((len(rows),), (len(rows), 1)):
        raise _reject(
            RejectionReason.WRONG_SIGNATURE,
            f"output shape {full.shape} for {len(rows)} rows; expected [N] or [N, 1]",
        )
    scores = full.reshape(-1).astype(np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise _reject(
            RejectionReason.NON_FINITE_OUTPUT,
            f"non-finite output on {int(bad.sum())}/{len(scores)} held-out rows "
            f"(first at row {int(np.argmax(bad))})",
        )
    if spec.sigmoid_output and ((scores < 0).any() or (scores > 1).any()):
        raise _reject(
            RejectionReason.OUTPUT_OUT_OF_RANGE,
            f"probability outputs in [{scores.min():.6g}, {scores.max():.6g}], not within [0, 1]",
        )
    alone = np.asarray([np.asarray(s).reshape(-1)[0] for s in singles], dtype=np.float64)
    diff = np.abs(alone - scores[: len(alone)])
    max_diff = float(diff.max()) if diff.size else 0.0
    if (diff > BATCH_ATOL + BATCH_RTOL * np.abs(scores[: len(alone)])).any():
        raise _reject(
            RejectionReason.BATCH_MISMATCH,
            f"rows scored alone differ from the same rows in a batch of {len(rows)} "
            f"(max |diff| {max_diff:.3g})",
        )
    return ProvenModel(
        onnx=onnx_bytes,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        size_bytes=len(onnx_bytes),
        opset=opset,
        input_name=input_name,
        input_shape=[None, spec.feature_count],
        output_name=output_name,
        output_shape=[None, 1] if output_rank == 2 else [None],
        rows_checked=len(scores),
        max_abs_diff=max_diff,
    )


def parameter_count(onnx_bytes: bytes) -> int:
    """Numbers stored in the graph's initializers (a tree ensemble keeps its own in attributes)."""
    model = onnx.load_from_string(onnx_bytes)
    return int(sum(int(np.prod(init.dims)) for init in model.graph.initializer))
