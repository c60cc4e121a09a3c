"""A team's trainer inside relearn's pipeline: test rows held back, its file proven, gated, measured."""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts.model_types import ModelTypeSpec
from contracts.trainer_config import PythonTrainer, ScriptTrainer
from training.dataset import Dataset, Split, require_samples, split_dataset
from training.errors import RejectionReason, TrainerRejectedError, WorseThanProductionError
from training.export import score_onnx
from training.fit import EpochCallback, EpochReport
from training.losses import evaluation_loss
from training.proof import parameter_count, prove_artifact
from training.trainers.datafile import write_json, write_parquet
from training.trainers.files import sha256_of_file
from training.trainers.plugin import PluginInput, module_lineage, run_plugin
from training.trainers.reported import disagreement, parse_epoch_line, parse_metric_lines
from training.trainers.script import expand, run_script, script_file

if TYPE_CHECKING:
    from training.pipeline import Candidate, TrainingPipeline

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress callbacks while a script is quiet


def _train_script(
    config: ScriptTrainer,
    spec: ModelTypeSpec,
    seen: Dataset,
    on_epoch: EpochCallback | None,
    timings: dict[str, float],
) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """(ONNX bytes, reported metrics, lineage) of one run of the script on the seen rows."""
    with tempfile.TemporaryDirectory(prefix="relearn-train-") as workspace:
        folder = Path(workspace)
        values = {
            "{python}": sys.executable,
            "{data}": str(folder / "samples.json"),
            "{data_parquet}": str(folder / "samples.parquet"),
            "{output}": str(folder / "model.onnx"),
            "{workdir}": str(config.workdir),
        }
        started = time.perf_counter()
        template = " ".join(config.argv)
        if "{data}" in template:
            write_json(folder / "samples.json", seen, spec)
        if "{data_parquet}" in template:
            write_parquet(folder / "samples.parquet", seen, spec)
        timings["write_data"] = time.perf_counter() - started

        argv = expand(config.argv, values)
        script = script_file(config)
        lineage = {
            "kind": "script",
            "argv": list(config.argv),
            "workdir": str(config.workdir),
            "script_file": str(script) if script else None,
            "sha256": sha256_of_file(script) if script else None,
        }
        progress = _Progress(on_epoch)
        started = time.perf_counter()
        try:
            run = run_script(config, argv, on_line=progress.line, on_tick=progress.tick)
        except TrainerRejectedError as exc:
            exc.context["trainer"] = lineage
            raise
        finally:
            timings["script"] = time.perf_counter() - started
        output = folder / "model.onnx"
        if not output.is_file() or output.stat().st_size == 0:
            raise TrainerRejectedError(
                f"the trainer exited 0 but wrote no ONNX file at {{output}} ({output.name})",
                reason=RejectionReason.NO_OUTPUT,
                context={"argv": argv, "stderr_tail": run.stderr_tail, "trainer": lineage},
            )
        return output.read_bytes(), parse_metric_lines(run.stdout), lineage


class _Progress:
    """Turns a script's epoch lines (and its silences) into the pipeline's epoch callbacks."""

    def __init__(self, on_epoch: EpochCallback | None) -> None:
        self.on_epoch = on_epoch
        self.last = EpochReport(0, 0, math.nan, math.nan, math.nan, False)
        self.called = time.monotonic()

    def line(self, stream: str, text: str) -> None:
        parsed = parse_epoch_line(text) if stream == "stdout" else None
        if parsed is None:
            return
        best = self.last.best_val_loss
        improved = math.isfinite(parsed.val_loss) and not (parsed.val_loss >= best)
        self.last = EpochReport(
            parsed.epoch,
            parsed.max_epochs or 0,
            parsed.train_loss,
            parsed.val_loss,
            parsed.val_loss if improved else best,
            improved,
        )
        self._call()

    def tick(self) -> None:
        # the callback is also how a stopping worker cancels: it must run during silences too
        if time.monotonic() - self.called >= PROGRESS_INTERVAL:
            self._call()

    def _call(self) -> None:
        self.called = time.monotonic()
        if self.on_epoch is not None:
            self.on_epoch(self.last)


def _train_plugin(
    config: PythonTrainer, spec: ModelTypeSpec, split: Split, seed: int, opset: int
) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    data = PluginInput(
        train_features=split.train.features,
        train_targets=split.train.targets,
        validation_features=split.validation.features,
        validation_targets=split.validation.targets,
        seed=seed,
        feature_names=spec.features,
        opset=opset,
    )
    try:
        result = run_plugin(config, spec, data)
    except TrainerRejectedError as exc:
        exc.context["trainer"] = {"kind": "python", "entry": config.entry}
        raise
    return result.onnx, result.reported, module_lineage(config, result.module_file)


def _losses(onnx_bytes: bytes, spec: ModelTypeSpec, split: Split) -> dict[str, float]:
    losses = {}
    for key, part in (
        ("train_loss", split.train),
        ("val_loss", split.validation),
        ("test_loss", split.test),
    ):
        try:
            scores = score_onnx(onnx_bytes, part.features)
        except Exception as exc:  # it ran on the test rows; a failure on others is still a verdict
            raise TrainerRejectedError(
                f"onnxruntime could not score the {key[:-5]} rows: {exc}",
                reason=RejectionReason.NOT_ONNX,
            ) from exc
        if not np.isfinite(scores).all():
            raise TrainerRejectedError(
                f"non-finite output on {int((~np.isfinite(scores)).sum())} rows of {key[:-5]}",
                reason=RejectionReason.NON_FINITE_OUTPUT,
            )
        losses[key] = evaluation_loss(scores, part.targets, spec.loss)
    return losses


def build_external(
    pipeline: TrainingPipeline,
    spec: ModelTypeSpec,
    dataset: Dataset,
    on_epoch: EpochCallback | None = None,
) -> Candidate:
    """Like TrainingPipeline.build for a script or plugin; raises a TrainingError when rejected."""
    from training.pipeline import Candidate  # the builtin pipeline's type, shared by every kind

    config = pipeline.config
    hyper = config.hyper
    timings: dict[str, float] = {}
    require_samples(dataset, config.min_samples)
    split = split_dataset(dataset, hyper.seed, hyper.validation_fraction, hyper.test_fraction)
    trainer = spec.trainer
    started = time.perf_counter()
    if isinstance(trainer, ScriptTrainer):
        # The script sees train + validation; the test rows never leave relearn.
        seen = Dataset(
            np.concatenate([split.train.features, split.validation.features]),
            np.concatenate([split.train.targets, split.validation.targets]),
            details=(
                {
                    k: np.concatenate([v, split.validation.details[k]])
                    for k, v in split.train.details.items()
                }
                if split.train.details is not None and split.validation.details is not None
                else None
            ),
        )
        onnx_bytes, reported, lineage = _train_script(trainer, spec, seen, on_epoch, timings)
    elif isinstance(trainer, PythonTrainer):
        onnx_bytes, reported, lineage = _train_plugin(
            trainer, spec, split, hyper.seed, config.opset
        )
        timings["plugin"] = time.perf_counter() - started
    else:
        raise TypeError(f"not an external trainer: {trainer!r}")

    started = time.perf_counter()
    try:
        proven = prove_artifact(onnx_bytes, spec, split.test.features)
        losses = _losses(onnx_bytes, spec, split)
    except TrainerRejectedError as exc:
        exc.context.update({"trainer": lineage, "reported_metrics": reported})
        raise
    timings["prove"] = time.perf_counter() - started

    parameters = reported.get("parameters")
    metrics: dict[str, Any] = {
        **losses,
        "early_stopping_epoch": reported.get("early_stopping_epoch"),
        "parameters": parameters if isinstance(parameters, int) else parameter_count(onnx_bytes),
        "train_samples": len(split.train),
        "val_samples": len(split.validation),
        "test_samples": len(split.test),
        "seed": hyper.seed,
        "trainer": lineage["kind"],
        "reported_metrics": reported,
        "duplicates_dropped": dataset.duplicates,
        "malformed_dropped": dataset.skipped,
        "batch_max_abs_diff": proven.max_abs_diff,
        "proof_rows": proven.rows_checked,
    }
    differs = disagreement(reported, losses["test_loss"])
    if differs:
        log.warning("reported metrics disagree model_type=%s: %s", spec.name, differs)
        metrics["reported_disagreement"] = differs

    started = time.perf_counter()
    gate = pipeline.gate(spec, split, losses["test_loss"])
    timings["gate"] = time.perf_counter() - started
    metrics["gate"] = gate.outcome.value
    metrics["gate_detail"] = gate.detail
    log.info("gate model_type=%s outcome=%s %s", spec.name, gate.outcome, gate.detail)
    if not gate.deploy:
        baseline = {"test_loss": gate.production_loss, "version": gate.production_version}
        raise WorseThanProductionError(
            gate.detail,
            context={"metrics": metrics, "baseline_metrics": baseline, "trainer": lineage},
        )
    return Candidate(spec, proven, metrics, gate, None, timings, trainer=lineage)
