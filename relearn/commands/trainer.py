"""`relearn trainer`: the training worker in the foreground (a consumer group on retrain-commands)."""

from __future__ import annotations

import argparse
import signal
import threading


def register(subparsers: argparse._SubParsersAction) -> None:
    trainer = subparsers.add_parser(
        "trainer",
        help="the training worker: retrain-commands -> model-deployed",
        description="Consume retrain-commands, train, export and validate ONNX, gate against "
        "production, publish model-deployed (or a deployment_rejected registry event). "
        "Settings from the environment: KAFKA_BOOTSTRAP_SERVERS, RELEARN_TOPIC_PREFIX, "
        "RELEARN_ARTIFACT_DIR, RELEARN_REGISTRY_URL, RELEARN_STATE_DIR, "
        "RELEARN_TRAINING_WINDOW_DAYS, RELEARN_TRAINING_MAX_RECORDS, RELEARN_TRAINING_MIN_SAMPLES, "
        "RELEARN_GATE_TOLERANCE, RELEARN_GATE_UNAVAILABLE_POLICY (reject|deploy), ... "
        "RELEARN_FAULT_INJECTION=true (demos and tests only) makes it act on the files in "
        "RELEARN_FAULTS_DIR, and it refuses to start if the registry serves other models.",
    )
    trainer.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from relearn.extras import require_trainer_extra

    require_trainer_extra("trainer")
    from training.service import run_trainer
    from training.settings import TrainerSettings

    settings = TrainerSettings()
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_trainer(settings, stop)
    return 0
