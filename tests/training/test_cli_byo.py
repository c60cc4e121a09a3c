"""`relearn train` with a team's own trainer: the metric lines, and a rejection that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from relearn.cli import main
from tests.training.byo_helpers import COPY, good_weights, linear_onnx
from training.export import score_onnx
from training.synthetic import synthetic_samples

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ml" / "train_calling_score_model.py"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("RELEARN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RELEARN_REGISTRY_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("RELEARN_TRAINING_MIN_SAMPLES", "100")
    monkeypatch.setenv("RELEARN_FAULTS_DIR", str(tmp_path / "faults"))
    (tmp_path / "bad.onnx").write_bytes(linear_onnx(good_weights(), batch=1))
    types = [
        {"name": "team_score", "feature_count": 23, "target": "outcome_score", "loss": "mse",
         "trainer": {"kind": "script", "argv": ["{python}", str(EXAMPLE), "--data", "{data}",
                                                "--output", "{output}", "--model", "linear"]}},
        {"name": "team_fixed_batch", "feature_count": 23, "target": "outcome_score", "loss": "mse",
         "trainer": {"kind": "script",
                     "argv": ["{python}", "-c", COPY, str(tmp_path / "bad.onnx"), "{output}", "{data}"]}},
    ]  # fmt: skip
    (tmp_path / "types.yaml").write_text(yaml.safe_dump({"model_types": types}))
    data = [
        {k: v for k, v in s.items() if k != "model_type"}
        for s in synthetic_samples(400, "calling_score", seed=2)
    ]
    (tmp_path / "samples.json").write_text(json.dumps(data))
    return tmp_path


def _train(tmp_path: Path, model_type: str, output: Path) -> int:
    return main(["train", "--model-type", model_type, "--model-types", str(tmp_path / "types.yaml"),
                 "--data", str(tmp_path / "samples.json"), "--output", str(output)])  # fmt: skip


def test_a_team_script_prints_the_metric_lines_and_writes_the_proven_model(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli_env / "out" / "model.onnx"
    code = _train(cli_env, "team_score", output)
    out = capsys.readouterr().out
    assert code == 0, out
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    for label in ("Test Loss", "Val Loss", "Train Loss"):
        assert lines[label].startswith(f"{label}: 0.")
    assert "24 parameters" in out and "Samples: 320 train, 40 validation, 40 test" in out
    assert "Trainer: script; it reported {" in out
    rows = np.asarray(
        [s["features"] for s in synthetic_samples(5, "calling_score", seed=9)], np.float32
    )
    assert score_onnx(output.read_bytes(), rows).shape == (5,)


def test_a_rejected_team_model_exits_non_zero_with_the_reason_and_writes_nothing(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli_env / "out" / "model.onnx"
    code = _train(cli_env, "team_fixed_batch", output)
    out = capsys.readouterr().out
    assert code != 0
    assert "Rejected: wrong_signature:" in out and "batch dimension is fixed" in out
    assert not output.exists() and not output.parent.exists()
