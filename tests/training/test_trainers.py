"""A team's own trainer (script and python kinds): the config, the proof, every rejection, lineage."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from contracts.model_types import ModelTypeCatalog, ModelTypeSpec
from contracts.trainer_config import PythonTrainer, ScriptTrainer, TrainerKind
from tests.training.byo_helpers import (
    COPY,
    catalog_from,
    dataset_for,
    good_weights,
    linear_onnx,
    script_type,
)
from training.dataset import split_dataset
from training.errors import RejectionReason, TrainingError
from training.export import score_onnx
from training.losses import evaluation_loss
from training.pipeline import PipelineConfig, TrainingPipeline, rejection_event
from training.production import FixedProductionSource, ProductionModel
from training.trainers.reported import parse_epoch_line, parse_metric_lines

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _pipeline(catalog: ModelTypeCatalog, production: ProductionModel | None = None):  # type: ignore[no-untyped-def]
    return TrainingPipeline(
        catalog, PipelineConfig(min_samples=100), FixedProductionSource(production)
    )


def _spec(catalog: ModelTypeCatalog, name: str) -> ModelTypeSpec:
    spec = catalog.get(name)
    assert spec is not None
    return spec


def _rejected(catalog: ModelTypeCatalog, name: str, count: int = 300) -> TrainingError:
    spec = _spec(catalog, name)
    with pytest.raises(TrainingError) as caught:
        _pipeline(catalog).build(spec, dataset_for(spec, count))
    return caught.value


def _prepared(tmp_path: Path, onnx_bytes: bytes, name: str = "prepared.onnx") -> str:
    path = tmp_path / name
    path.write_bytes(onnx_bytes)
    return str(path)


# -- configuration ------------------------------------------------------------------------------


def test_the_documented_yaml_shape_loads_with_workdir_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "types.yaml"
    path.write_text(
        """
model_types:
  - name: calling_score_gbm
    features: [tenure_days, calls_last_week, age]
    target: outcome_score
    loss: mse
    trainer:
      kind: script
      argv: ["{python}", "train_calling_score_model.py", "--data", "{data}", "--output", "{output}"]
      workdir: ml/
      timeout_seconds: 900
  - name: plugged
    feature_count: 23
    target: positive_outcome
    loss: bce
    trainer: {kind: python, entry: "mypkg.train:fit"}
"""
    )
    catalog = ModelTypeCatalog.load(path)
    gbm, plugged = _spec(catalog, "calling_score_gbm"), _spec(catalog, "plugged")
    assert gbm.feature_count == 3 and gbm.features == ("tenure_days", "calls_last_week", "age")
    assert isinstance(gbm.trainer, ScriptTrainer)
    assert gbm.trainer.workdir == (tmp_path / "conf" / "ml").resolve()
    assert gbm.trainer.timeout_seconds == 900
    assert isinstance(plugged.trainer, PythonTrainer) and plugged.trainer.entry == "mypkg.train:fit"
    assert plugged.trainer.workdir == (tmp_path / "conf").resolve()  # default: the file's folder
    assert (
        _spec(catalog, "calling_score").trainer.kind is TrainerKind.BUILTIN
    )  # built-ins unchanged


@pytest.mark.parametrize(
    "entry",
    [
        {"features": ["a", "b"], "feature_count": 3},  # the count must follow the names
        {"features": ["a", "a"]},
        {"feature_count": 2, "trainer": {"kind": "script", "argv": ["train.py", "{data}"]}},
        {"feature_count": 2, "trainer": {"kind": "python", "entry": "no colon"}},
        {"feature_count": 2, "trainer": {"kind": "shell", "argv": ["x"]}},
    ],
)
def test_a_malformed_trainer_config_is_refused_at_load(entry: dict) -> None:
    with pytest.raises(ValidationError):
        ModelTypeSpec.model_validate(
            {"name": "x", "target": "outcome_score", "loss": "mse", **entry}
        )


def test_metric_lines_are_read_tolerantly() -> None:
    printed = [
        "Epoch 1/50 train loss 0.9 val loss 0.8",  # progress, not the final figures
        "Test Loss: 0.0257",
        "val_loss=0.0279",
        "TRAINING LOSS :  2.34e-2",
        "Early stopping at epoch 42",
        "13,441 parameters",
        "something else entirely",
    ]
    assert parse_metric_lines(printed) == {
        "test_loss": 0.0257,
        "val_loss": 0.0279,
        "train_loss": 0.0234,
        "early_stopping_epoch": 42,
        "parameters": 13441,
    }
    assert parse_metric_lines(["nothing here"]) == {}
    epoch = parse_epoch_line("Epoch 3/100 - Train Loss: 0.5, Val Loss: 0.25")
    assert epoch is not None and (epoch.epoch, epoch.max_epochs, epoch.val_loss) == (3, 100, 0.25)


# -- the script kind ----------------------------------------------------------------------------


def test_the_script_never_sees_the_test_rows_and_relearn_measures_it_itself(tmp_path: Path) -> None:
    seen_file = tmp_path / "seen.json"
    script = tmp_path / "train.py"
    script.write_text(
        "import json, shutil, sys\n"
        "rows = json.load(open(sys.argv[1]))\n"
        f"json.dump(rows, open({str(seen_file)!r}, 'w'))\n"
        f"shutil.copy({_prepared(tmp_path, linear_onnx(good_weights()))!r}, sys.argv[2])\n"
        "print('Test Loss: 9.5')\nprint('Val Loss: 0.5')\nprint('Train Loss: 0.4')\n"
        "print('Early stopping at epoch 7')\nprint('24 parameters')\n"
    )
    catalog = catalog_from(
        tmp_path, [script_type("team", ["{python}", "train.py", "{data}", "{output}"])]
    )
    spec = _spec(catalog, "team")
    dataset = dataset_for(spec, 400)
    candidate = _pipeline(catalog).build(spec, dataset)

    split = split_dataset(dataset, 42, 0.1, 0.1)
    assert split.test.details is not None
    rows = json.loads(seen_file.read_text())
    seen = {r["event_id"] for r in rows}
    assert len(rows) == 360 and not seen & set(split.test.details["event_id"])
    assert set(rows[0]) >= {
        "features",
        "outcome_score",
        "positive_outcome",
        "event_id",
        "occurred_at",
    }
    assert len(rows[0]["features"]) == 23 and isinstance(rows[0]["positive_outcome"], bool)

    metrics = candidate.metrics
    expected = evaluation_loss(
        score_onnx(candidate.proven.onnx, split.test.features), split.test.targets, spec.loss
    )
    assert metrics["test_loss"] == pytest.approx(expected, rel=1e-9)
    assert metrics["reported_metrics"]["test_loss"] == 9.5  # kept, never trusted
    assert "reported_disagreement" in metrics
    assert metrics["early_stopping_epoch"] == 7 and metrics["parameters"] == 24
    assert (metrics["train_samples"], metrics["val_samples"], metrics["test_samples"]) == (
        320,
        40,
        40,
    )
    assert metrics["gate"] == "no_production" and metrics["trainer"] == "script"
    lineage = candidate.trainer
    assert lineage is not None and lineage["kind"] == "script"
    assert lineage["argv"] == ["{python}", "train.py", "{data}", "{output}"]
    assert lineage["sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert candidate.proven.input_shape == [None, 23] and candidate.proven.output_shape == [None, 1]


def test_parquet_data_and_a_flat_output_are_accepted(tmp_path: Path) -> None:
    check = (
        "import pyarrow.parquet as pq, shutil, sys\n"
        "table = pq.read_table(sys.argv[1])\n"
        "assert table.num_rows == 360 and len(table.column('features')[0]) == 23, table.schema\n"
        "shutil.copy(os.environ['PREPARED'], sys.argv[2])\n"
    )
    onnx_file = _prepared(tmp_path, linear_onnx(good_weights(), output_rank=1))
    argv = ["{python}", "-c", "import os\n" + check, "{data_parquet}", "{output}"]
    catalog = catalog_from(tmp_path, [script_type("pq", argv, env={"PREPARED": onnx_file})])
    spec = _spec(catalog, "pq")
    candidate = _pipeline(catalog).build(spec, dataset_for(spec, 400))
    assert candidate.proven.output_shape == [None]
    assert candidate.trainer is not None and candidate.trainer["sha256"] is None  # -c: no file


def test_the_example_script_trains_a_model_relearn_proves(tmp_path: Path) -> None:
    catalog = ModelTypeCatalog.load(EXAMPLES / "model_types.yaml")
    spec = _spec(catalog, "calling_score_gbm")
    assert isinstance(spec.trainer, ScriptTrainer)
    # the linear variant of the same script: the test is about the loop, not about boosting
    linear = spec.model_copy(
        update={
            "trainer": spec.trainer.model_copy(
                update={"argv": (*spec.trainer.argv, "--model", "linear")}
            )
        }
    )
    candidate = _pipeline(catalog).build(linear, dataset_for(linear, 1000))
    reported = candidate.metrics["reported_metrics"]
    assert {"test_loss", "val_loss", "train_loss", "parameters"} <= set(reported)
    assert candidate.metrics["parameters"] == 24
    assert candidate.metrics["test_loss"] < 0.05
    assert candidate.trainer is not None
    assert candidate.trainer["script_file"] == str(EXAMPLES / "ml" / "train_calling_score_model.py")


def test_a_model_worse_than_production_on_the_same_rows_is_gated(tmp_path: Path) -> None:
    onnx_file = _prepared(tmp_path, linear_onnx(np.zeros(23, np.float32), bias=5.0))
    catalog = catalog_from(
        tmp_path, [script_type("team", ["{python}", "-c", COPY, onnx_file, "{output}", "{data}"])]
    )
    spec = _spec(catalog, "team")
    production = ProductionModel("v1.0", linear_onnx(good_weights()))
    with pytest.raises(TrainingError) as caught:
        _pipeline(catalog, production).build(spec, dataset_for(spec, 300))
    assert caught.value.reason is RejectionReason.WORSE_THAN_PRODUCTION
    assert caught.value.context["baseline_metrics"]["version"] == "v1.0"
    assert caught.value.context["trainer"]["kind"] == "script"


# -- every failure is a verdict with a reason ---------------------------------------------------


def _copying(tmp_path: Path, onnx_bytes: bytes, target: str = "outcome_score") -> ModelTypeCatalog:
    source = _prepared(tmp_path, onnx_bytes)
    return catalog_from(
        tmp_path,
        [script_type("team", ["{python}", "-c", COPY, source, "{output}", "{data}"], target)],
    )


def test_a_non_zero_exit_is_rejected_with_the_tail_of_stderr(tmp_path: Path) -> None:
    code = "import sys; print('loading'); print('CUDA out of memory', file=sys.stderr); sys.exit(3)"
    catalog = catalog_from(
        tmp_path, [script_type("team", ["{python}", "-c", code, "{data}", "{output}"])]
    )
    error = _rejected(catalog, "team")
    assert error.reason is RejectionReason.TRAINER_FAILED and "status 3" in error.detail
    event = rejection_event("team", "c-1", error)
    assert event.details is not None and event.details["reason"] == "trainer_failed"
    assert "CUDA out of memory" in event.details["stderr_tail"]
    assert event.details["trainer"]["kind"] == "script"


def test_a_trainer_that_does_not_start_is_rejected(tmp_path: Path) -> None:
    catalog = catalog_from(
        tmp_path, [script_type("team", ["./no-such-trainer", "{data}", "{output}"])]
    )
    error = _rejected(catalog, "team")
    assert error.reason is RejectionReason.TRAINER_FAILED and "could not start" in error.detail


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "open(sys.argv[3], 'w').write(str(child.pid))\n"
        "print('training...', flush=True)\n"
        "time.sleep(120)\n"
    )
    catalog = catalog_from(
        tmp_path,
        [
            script_type(
                "team",
                ["{python}", "-c", code, "{data}", "{output}", str(pid_file)],
                timeout_seconds=3,
            )
        ],
    )
    started = time.monotonic()
    error = _rejected(catalog, "team")
    assert error.reason is RejectionReason.TRAINER_TIMEOUT
    assert time.monotonic() - started < 60
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the script's child outlived the timeout"


def test_no_file_at_output_is_rejected(tmp_path: Path) -> None:
    catalog = catalog_from(
        tmp_path, [script_type("team", ["{python}", "-c", "print('done')", "{data}", "{output}"])]
    )
    error = _rejected(catalog, "team")
    assert error.reason is RejectionReason.NO_OUTPUT


@pytest.mark.parametrize(
    ("product", "target", "reason"),
    [
        (b"this is not a model", "outcome_score", RejectionReason.NOT_ONNX),
        (linear_onnx(good_weights(24)), "outcome_score", RejectionReason.WRONG_SIGNATURE),
        (linear_onnx(good_weights(), batch=1), "outcome_score", RejectionReason.WRONG_SIGNATURE),
        (
            linear_onnx(np.full(23, np.nan, np.float32)),
            "outcome_score",
            RejectionReason.NON_FINITE_OUTPUT,
        ),
        (
            linear_onnx(good_weights(), bias=3.0),
            "positive_outcome",
            RejectionReason.OUTPUT_OUT_OF_RANGE,
        ),
    ],
    ids=["not-onnx", "wrong-width", "fixed-batch", "non-finite", "probability-out-of-range"],
)
def test_a_bad_file_is_rejected_with_its_reason(
    tmp_path: Path, product: bytes, target: str, reason: RejectionReason
) -> None:
    error = _rejected(_copying(tmp_path, product, target), "team")
    assert error.reason is reason, error.detail


# -- the python kind ----------------------------------------------------------------------------


def test_the_example_plugin_returns_a_torch_module_relearn_exports_and_proves() -> None:
    catalog = ModelTypeCatalog.load(EXAMPLES / "model_types.yaml")
    spec = _spec(catalog, "calling_score_plugin")
    candidate = _pipeline(catalog).build(spec, dataset_for(spec, 600))
    assert candidate.proven.input_name == "features" and candidate.proven.input_shape == [None, 23]
    assert candidate.metrics["parameters"] == 24 and candidate.metrics["trainer"] == "python"
    assert candidate.metrics["test_loss"] < 0.05
    module = EXAMPLES / "ml" / "calling_score_plugin.py"
    assert candidate.trainer == {
        "kind": "python",
        "entry": "calling_score_plugin:fit",
        "module_file": str(module),
        "sha256": hashlib.sha256(module.read_bytes()).hexdigest(),
    }


def test_a_plugin_that_cannot_be_imported_or_raises_is_rejected(tmp_path: Path) -> None:
    unique = f"byo_plugin_{os.getpid()}_{time.monotonic_ns()}"
    (tmp_path / f"{unique}.py").write_text(
        "def fit(data, spec):\n    raise RuntimeError('no convergence')\n"
        "def empty(data, spec):\n    return None\n"
        "def leaving(data, spec):\n    raise SystemExit('bye')\n"
    )
    entries = [
        {"name": "missing", "feature_count": 23, "target": "outcome_score", "loss": "mse",
         "trainer": {"kind": "python", "entry": "no_such_team_module:fit"}},
        {"name": "raising", "feature_count": 23, "target": "outcome_score", "loss": "mse",
         "trainer": {"kind": "python", "entry": f"{unique}:fit"}},
        {"name": "empty", "feature_count": 23, "target": "outcome_score", "loss": "mse",
         "trainer": {"kind": "python", "entry": f"{unique}:empty"}},
        {"name": "leaving", "feature_count": 23, "target": "outcome_score", "loss": "mse",
         "trainer": {"kind": "python", "entry": f"{unique}:leaving"}},
    ]  # fmt: skip
    catalog = catalog_from(tmp_path, entries)
    missing = _rejected(catalog, "missing")
    assert missing.reason is RejectionReason.PLUGIN_IMPORT_ERROR
    assert "ModuleNotFoundError" in missing.context["stderr_tail"]
    raising = _rejected(catalog, "raising")
    assert raising.reason is RejectionReason.TRAINER_FAILED
    assert "no convergence" in raising.context["stderr_tail"]
    assert _rejected(catalog, "empty").reason is RejectionReason.NO_OUTPUT
    assert _rejected(catalog, "leaving").reason is RejectionReason.TRAINER_FAILED  # sys.exit
    sys.modules.pop(unique, None)


def test_a_stopping_worker_stops_a_silent_script_at_once(tmp_path: Path) -> None:
    code = "import time; time.sleep(120)"
    catalog = catalog_from(
        tmp_path, [script_type("team", ["{python}", "-c", code, "{data}", "{output}"])]
    )
    spec = _spec(catalog, "team")

    def cancel(report: object) -> None:
        raise InterruptedError("worker stopping")

    started = time.monotonic()
    with pytest.raises(InterruptedError):
        _pipeline(catalog).build(spec, dataset_for(spec, 300), on_epoch=cancel)
    assert time.monotonic() - started < 30


def test_the_builtin_path_keeps_no_per_row_details() -> None:
    builtin = _spec(ModelTypeCatalog(), "calling_score")
    assert dataset_for(builtin, 50).details is None
