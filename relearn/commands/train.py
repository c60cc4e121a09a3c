"""`relearn train`: the manual path (train from a JSON or Parquet file) and `--from-lineage`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from relearn.errors import RelearnError


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model from a JSON/Parquet file, or reproduce a version from its lineage",
        description="Train, export and validate an ONNX model; prints 'Test Loss: ...', 'Val Loss: "
        "...', 'Train Loss: ...', 'Early stopping at epoch N', 'N parameters'.",
    )
    train.add_argument("--model-type", help="a configured model type, e.g. calling_score")
    train.add_argument("--data", type=Path, help="samples: a JSON list (or JSON lines) or .parquet")
    train.add_argument("--output", type=Path, help="where to write the validated ONNX model")
    train.add_argument(
        "--deploy", action="store_true", help="store the artifact, publish model-deployed"
    )
    train.add_argument(
        "--seed", type=int, help="split and initialization seed (RELEARN_TRAINING_SEED)"
    )
    train.add_argument("--max-epochs", type=int, help="RELEARN_TRAINING_MAX_EPOCHS for this run")
    train.add_argument(
        "--model-types",
        type=Path,
        help="YAML of extra model types, e.g. a team's own trainer (RELEARN_MODEL_TYPES_FILE)",
    )
    train.add_argument(
        "--from-lineage",
        nargs=2,
        metavar=("TYPE", "VERSION"),
        help="retrain a registered version from its recorded offsets and seed; compare metrics",
    )
    train.set_defaults(handler=_run)


class TrainCommandError(RelearnError):
    """A `relearn train` invocation that cannot run as asked."""


def _run(args: argparse.Namespace) -> int:
    from relearn.extras import require_trainer_extra

    require_trainer_extra("train")
    from training.settings import TrainerSettings

    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["training_seed"] = args.seed
    if args.max_epochs is not None:
        overrides["training_max_epochs"] = args.max_epochs
    if args.model_types is not None:
        overrides["model_types_file"] = args.model_types
    settings = TrainerSettings(**overrides)
    if args.from_lineage:
        return _from_lineage(settings, *args.from_lineage)
    if not args.model_type or not args.data:
        raise TrainCommandError(
            "--model-type and --data are required (or --from-lineage TYPE VERSION)"
        )
    return _from_file(settings, args.model_type, args.data, args.output, args.deploy)


def _epoch_progress(total: int) -> tuple[Any, Any]:
    """A progress bar on stderr, and the callback that advances it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = progress.add_task("epochs", total=total, losses="")

    def advance(report: Any) -> None:
        progress.update(
            task,
            completed=report.epoch,
            losses=f"train {report.train_loss:.4f} val {report.val_loss:.4f}",
        )

    return progress, advance


def _print_metrics(metrics: dict[str, Any]) -> None:
    # These exact lines are what the old service's scripts parsed.
    print(f"Test Loss: {metrics['test_loss']:.4f}")
    print(f"Val Loss: {metrics['val_loss']:.4f}")
    print(f"Train Loss: {metrics['train_loss']:.4f}")
    if metrics.get("early_stopping_epoch") is not None:
        print(f"Early stopping at epoch {metrics['early_stopping_epoch']}")
    else:
        print(f"No early stopping ({metrics.get('epochs_run')} epochs)")
    print(f"{metrics['parameters']} parameters")
    print(
        f"Samples: {metrics['train_samples']} train, {metrics['val_samples']} validation, "
        f"{metrics['test_samples']} test"
    )
    if metrics.get("trainer"):
        # a team's trainer: the lines above are relearn's own measurement on the held-back rows
        reported = metrics.get("reported_metrics") or {}
        print(f"Trainer: {metrics['trainer']}; it reported {reported or 'no metrics'}")


def _from_file(
    settings: Any, model_type: str, data: Path, output: Path | None, deploy: bool
) -> int:
    from contracts.events import to_json
    from training.artifacts import LocalArtifactStore
    from training.errors import TrainingError
    from training.files import load_samples
    from training.gate import GateUnavailablePolicy
    from training.pipeline import deployment_event, rejection_event
    from training.service import build_pipeline

    if not deploy:
        # Nothing is deployed: a gate that cannot compare is reported, not a reason to refuse
        # the file (with --deploy, RELEARN_GATE_UNAVAILABLE_POLICY applies as in the trainer).
        settings = settings.model_copy(
            update={"gate_unavailable_policy": GateUnavailablePolicy.DEPLOY}
        )
    pipeline = build_pipeline(settings, faults=False)
    try:
        spec = pipeline.spec_for(model_type)
        dataset = load_samples(data, spec)
        print(
            f"Loaded {len(dataset)} samples from {data} "
            f"({dataset.duplicates} duplicates, {dataset.skipped} malformed dropped)"
        )
        progress, advance = _epoch_progress(settings.training_max_epochs)
        with progress:
            candidate = pipeline.build(spec, dataset, on_epoch=advance)
    except TrainingError as exc:
        print(f"Rejected: {exc.reason}: {exc.detail}")
        if exc.context.get("stderr_tail"):
            print(f"Trainer output (tail):\n{exc.context['stderr_tail']}")
        if "metrics" in exc.context:
            _print_metrics(exc.context["metrics"])
        if deploy:
            _publish(
                settings,
                settings.topics.registry_events,
                model_type,
                to_json(rejection_event(model_type, None, exc)),
            )
            print("Published deployment_rejected")
        return 2

    _print_metrics(candidate.metrics)
    print(f"Gate: {candidate.gate.outcome} ({candidate.gate.detail})")
    target = output or Path(f"{spec.name}.onnx")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(candidate.proven.onnx)
    print(
        f"ONNX: {target} sha256 {candidate.proven.sha256} ({candidate.proven.size_bytes} bytes), "
        f"parity max |diff| {candidate.proven.max_abs_diff:.2e} on {candidate.proven.rows_checked} rows"
    )
    if deploy:
        stored = LocalArtifactStore(settings.resolved_artifact_dir()).put(
            spec.name, candidate.proven.onnx
        )
        event = deployment_event(candidate, stored, command_id=None, lineage=None)
        _publish(settings, settings.topics.model_deployed, spec.name, to_json(event))
        print(f"Deployed: deployment_id {event.deployment_id} artifact {stored.uri}")
    return 0


def _publish(settings: Any, topic: str, key: str, value: bytes) -> None:
    from bus.clients import make_producer

    producer = make_producer(settings.bootstrap_servers)
    producer.produce(topic, key=key.encode(), value=value)
    if producer.flush(30.0):
        raise TrainCommandError(f"could not publish to {topic} at {settings.bootstrap_servers}")


def _from_lineage(settings: Any, model_type: str, version: str) -> int:
    from contracts.events import Lineage
    from training.production import RegistryHttp
    from training.reproduce import COMPARED, reproduce
    from training.samples import KafkaSampleReader
    from training.service import build_pipeline

    spec = settings.model_types().get(model_type)
    if spec is not None and spec.trainer.kind != "builtin":
        raise TrainCommandError(
            f"{model_type} is trained by a {spec.trainer.kind} trainer; --from-lineage replays "
            "the builtin MLP only (the lineage's trainer.sha256 names the code that trained it)"
        )
    registry = RegistryHttp(settings.registry_url, settings.registry_timeout)
    try:
        record = registry.version_record(model_type, version)
    except LookupError as exc:
        raise TrainCommandError(str(exc)) from exc
    if not record.lineage:
        raise TrainCommandError(f"{model_type} {version} has no lineage (a manual deploy?)")
    lineage = Lineage.model_validate(record.lineage)
    recorded = dict(record.metrics)
    print(f"Reproducing {model_type} {version} from {lineage.topic} offsets {lineage.offsets}")
    result = reproduce(
        build_pipeline(settings, faults=False),
        model_type,
        lineage,
        recorded,
        KafkaSampleReader(settings.bootstrap_servers, lineage.topic),
    )
    _print_metrics(result.reproduced)
    print(f"{'metric':22} {'recorded':>24} {'reproduced':>24}")
    for key in COMPARED:
        print(f"{key:22} {recorded.get(key)!s:>24} {result.reproduced.get(key)!s:>24}")
    if result.exact:
        print("Reproduced exactly")
        return 0
    print(f"Not reproduced: {sorted(result.differences)} differ")
    return 3
