"""The ONNX proof: a real export passes; each kind of broken model fails with its own reason."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from tests.training.conftest import dataset_of, spec_of
from training.errors import ExportFailedError, ParityFailedError, RejectionReason
from training.export import export_onnx, prove_onnx, score_onnx
from training.network import build_network, predict


@pytest.fixture(params=["calling_score", "outcome_prediction"])
def trained(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    spec = spec_of(request.param)
    rows = dataset_of(spec.name, 64).features
    return spec, build_network(spec, rows, seed=1), rows


def test_export_is_proven_with_the_models_signature(trained) -> None:  # type: ignore[no-untyped-def]
    spec, network, rows = trained
    onnx_bytes = export_onnx(network, spec)
    proven = prove_onnx(onnx_bytes, spec, rows, predict(network, rows))
    assert (proven.input_name, proven.input_shape) == ("features", [None, 23])
    assert (proven.output_name, proven.output_shape) == ("score", [None, 1])
    assert proven.opset == 17 and proven.rows_checked == 64 and proven.max_abs_diff < 1e-5
    outputs = score_onnx(onnx_bytes, rows[:7])  # any batch size
    assert outputs.shape == (7,)
    if spec.sigmoid_output:  # the sigmoid is inside the graph
        assert ((outputs > 0) & (outputs < 1)).all()
        ops = {node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node}
        assert "Sigmoid" in ops
    # normalization is inside the graph too: raw features in, the torch output out
    np.testing.assert_allclose(outputs, predict(network, rows[:7]), atol=1e-5, rtol=1e-4)


def test_parity_failure_names_rows_and_tolerance(trained) -> None:  # type: ignore[no-untyped-def]
    spec, network, rows = trained
    other = build_network(spec, rows, seed=2)
    with pytest.raises(ParityFailedError) as caught:
        prove_onnx(export_onnx(other, spec), spec, rows, predict(network, rows))
    assert caught.value.reason is RejectionReason.PARITY_FAILED
    assert "held-out rows" in caught.value.detail


def test_garbage_fails_the_checker() -> None:
    spec = spec_of("calling_score")
    with pytest.raises(ExportFailedError, match="onnx.checker"):
        prove_onnx(b"not an onnx model", spec, np.zeros((2, 23), np.float32), np.zeros(2))


def test_wrong_signature_is_refused() -> None:
    spec = spec_of("calling_score")
    rows = dataset_of("calling_score", 16).features
    renamed = spec.model_copy(update={"input_name": "x"})
    network = build_network(spec, rows, seed=1)
    with pytest.raises(ExportFailedError, match="input is named 'x'"):
        prove_onnx(export_onnx(network, renamed), spec, rows, predict(network, rows))
    narrow = spec.model_copy(update={"feature_count": 5})
    small = build_network(narrow, rows[:, :5], seed=1)
    with pytest.raises(ExportFailedError, match=r"shape \[None, 5\]"):
        prove_onnx(export_onnx(small, narrow), spec, rows, predict(small, rows[:, :5]))


def test_non_finite_outputs_are_refused() -> None:
    spec = spec_of("calling_score")
    rows = dataset_of("calling_score", 16).features
    network = build_network(spec, rows, seed=1)
    with torch.no_grad():
        last = network.body[-1]
        assert isinstance(last, torch.nn.Linear)
        last.bias.fill_(float("inf"))
    with pytest.raises(ExportFailedError, match="non-finite"):
        prove_onnx(export_onnx(network, spec), spec, rows, predict(network, rows))
