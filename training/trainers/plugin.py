"""The `python` trainer kind: `package.module:function` called in-process with numpy arrays."""

from __future__ import annotations

import importlib
import io
import logging
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts.model_types import ModelTypeSpec
from contracts.trainer_config import PythonTrainer
from training.errors import RejectionReason, TrainerRejectedError
from training.trainers.files import sha256_of_file
from training.trainers.script import TAIL_CHARS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginInput:
    """What a plugin gets: the window's train and validation rows (the test rows stay with relearn)."""

    train_features: np.ndarray  # (n, F) float32
    train_targets: np.ndarray  # (n,) float32: outcome_score, or 1.0 / 0.0 for positive_outcome
    validation_features: np.ndarray
    validation_targets: np.ndarray
    seed: int
    feature_names: tuple[str, ...] | None = None
    opset: int = 17


@dataclass(frozen=True)
class PluginResult:
    onnx: bytes
    reported: dict[str, Any] = field(default_factory=dict)
    module_file: Path | None = None


def _traceback_tail() -> str:
    return traceback.format_exc()[-TAIL_CHARS:]


def load_entry(config: PythonTrainer) -> tuple[Callable[..., Any], Path | None]:
    """Import `module:function` (workdir first on sys.path); plugin_import_error when it cannot."""
    module_name, function_name = config.entry.split(":")
    if config.workdir is not None and str(config.workdir) not in sys.path:
        sys.path.insert(0, str(config.workdir))
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
    except (Exception, SystemExit) as exc:  # ImportError, SyntaxError, whatever its top level does
        raise TrainerRejectedError(
            f"cannot import {config.entry}: {type(exc).__name__}: {exc}",
            reason=RejectionReason.PLUGIN_IMPORT_ERROR,
            context={"entry": config.entry, "stderr_tail": _traceback_tail()},
        ) from exc
    if not callable(function):
        raise TrainerRejectedError(
            f"{config.entry} is not callable",
            reason=RejectionReason.PLUGIN_IMPORT_ERROR,
            context={"entry": config.entry},
        )
    source = getattr(module, "__file__", None)
    return function, Path(source).resolve() if source else None


def export_module(module: Any, spec: ModelTypeSpec, opset: int) -> bytes:
    """A torch module the plugin returned, exported as relearn exports its own (dynamic batch)."""
    import torch

    module.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, spec.feature_count, dtype=torch.float32),),
            buffer,  # type: ignore[arg-type]
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def run_plugin(config: PythonTrainer, spec: ModelTypeSpec, data: PluginInput) -> PluginResult:
    """Call the plugin; it returns ONNX bytes or a torch module, optionally with a metrics dict."""
    function, module_file = load_entry(config)
    context = {"entry": config.entry}
    try:
        returned = function(data, spec)
    except (Exception, SystemExit) as exc:  # the plugin's failure is a verdict, not the worker's
        raise TrainerRejectedError(
            f"{config.entry} raised {type(exc).__name__}: {exc}",
            reason=RejectionReason.TRAINER_FAILED,
            context={**context, "stderr_tail": _traceback_tail()},
        ) from exc
    reported: dict[str, Any] = {}
    if isinstance(returned, tuple) and len(returned) == 2 and isinstance(returned[1], dict):
        returned, reported = returned
    if isinstance(returned, bytes | bytearray):
        return PluginResult(bytes(returned), reported, module_file)
    if returned is None:
        raise TrainerRejectedError(
            f"{config.entry} returned nothing", reason=RejectionReason.NO_OUTPUT, context=context
        )
    if hasattr(returned, "state_dict") and callable(returned):
        try:
            onnx_bytes = export_module(returned, spec, data.opset)
        except Exception as exc:  # torch's exporter raises many types for a module it cannot trace
            raise TrainerRejectedError(
                f"the torch module {config.entry} returned could not be exported: {exc}",
                reason=RejectionReason.NOT_ONNX,
                context={**context, "stderr_tail": _traceback_tail()},
            ) from exc
        return PluginResult(onnx_bytes, reported, module_file)
    raise TrainerRejectedError(
        f"{config.entry} returned a {type(returned).__name__}; expected ONNX bytes or a torch module",
        reason=RejectionReason.NOT_ONNX,
        context=context,
    )


def module_lineage(config: PythonTrainer, module_file: Path | None) -> dict[str, Any]:
    return {
        "kind": "python",
        "entry": config.entry,
        "module_file": str(module_file) if module_file else None,
        "sha256": sha256_of_file(module_file) if module_file and module_file.is_file() else None,
    }
