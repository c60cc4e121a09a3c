"""Wires the trainer from its settings: the adapters, the pipeline, the worker and its consumer."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from confluent_kafka import Consumer

from bus.clients import ConsumerOptions, make_consumer, make_producer
from bus.web import WebServer
from training.artifacts import ArtifactStore, LocalArtifactStore
from training.backlog import KafkaCommandBacklog
from training.faults import FaultHooks, FileFaults, check_registry_is_a_test_bed
from training.gate import GateUnavailablePolicy
from training.ledger import SqliteCommandLedger
from training.pipeline import PipelineConfig, TrainingPipeline
from training.production import ProductionModelSource, RegistryHttp
from training.samples import KafkaSampleReader, SampleSource
from training.settings import TrainerSettings
from training.web import (
    Check,
    broker_check,
    consumer_check,
    create_app,
    registry_check,
)
from training.worker import RetrainWorker

log = logging.getLogger(__name__)


def pipeline_config(settings: TrainerSettings) -> PipelineConfig:
    return PipelineConfig(
        hyper=settings.hyperparameters(),
        min_samples=settings.training_min_samples,
        gate_tolerance=settings.gate_tolerance,
        gate_unavailable_policy=settings.gate_unavailable_policy,
        gate_attempts=settings.gate_attempts,
        gate_retry_seconds=settings.gate_retry_seconds,
        parity_atol=settings.parity_atol,
        parity_rtol=settings.parity_rtol,
        opset=settings.onnx_opset,
    )


def fault_hooks(settings: TrainerSettings) -> FaultHooks | None:
    """The demo's and tests' fault files, only when RELEARN_FAULT_INJECTION=true; else none."""
    return FileFaults(settings.faults_dir) if settings.fault_injection else None


def build_pipeline(
    settings: TrainerSettings, production: ProductionModelSource | None = None, faults: bool = True
) -> TrainingPipeline:
    """`faults=False` (the manual path) never takes a fault file, whatever the settings say."""
    return TrainingPipeline(
        catalog=settings.model_types(),
        config=pipeline_config(settings),
        production=production or RegistryHttp(settings.registry_url, settings.registry_timeout),
        faults=fault_hooks(settings) if faults else None,
    )


def build_worker(
    settings: TrainerSettings,
    *,
    pipeline: TrainingPipeline | None = None,
    production: ProductionModelSource | None = None,
    samples: SampleSource | None = None,
    artifacts: ArtifactStore | None = None,
) -> RetrainWorker:
    return RetrainWorker(
        topics=settings.topics,
        pipeline=pipeline or build_pipeline(settings, production),
        samples=samples
        or KafkaSampleReader(
            settings.bootstrap_servers,
            settings.topics.training_samples,
            max_records=settings.training_max_records,
        ),
        artifacts=artifacts or LocalArtifactStore(settings.resolved_artifact_dir()),
        ledger=SqliteCommandLedger(settings.ledger_path),
        producer=make_producer(settings.bootstrap_servers),
        window=timedelta(days=settings.training_window_days),
        backlog=KafkaCommandBacklog(settings.bootstrap_servers),
        faults=fault_hooks(settings),
    )


def make_command_consumer(
    settings: TrainerSettings, max_poll_interval_ms: int | None = None
) -> Consumer:
    """The group's consumer; offsets are committed by the worker, after the outcome is published."""
    options = ConsumerOptions(
        auto_commit=False,
        session_timeout_ms=settings.trainer_session_timeout_ms,
        max_poll_interval_ms=max_poll_interval_ms,
    )
    return make_consumer(settings.bootstrap_servers, settings.trainer_group_id, options)


def readiness_checks(settings: TrainerSettings, worker: RetrainWorker) -> dict[str, Check]:
    """What /readyz asks: the broker, the consumer, and the registry when the gate needs it (with
    the `deploy` policy an unreachable registry only means an ungated deployment)."""
    checks = {"kafka": broker_check(worker.producer), "consumer": consumer_check(worker.consuming)}
    if settings.gate_unavailable_policy is GateUnavailablePolicy.REJECT:
        checks["registry"] = registry_check(settings.registry_url)
    return checks


def trainer_web(settings: TrainerSettings, worker: RetrainWorker) -> WebServer:
    app = create_app(worker.metrics, readiness_checks(settings, worker))
    return WebServer(
        app,
        settings.trainer_web_host,
        settings.trainer_web_port,
        "trainer",
        "/metrics /livez /readyz",
    )


def run_trainer(settings: TrainerSettings, stop: threading.Event) -> None:
    """`relearn trainer`: consume retrain-commands until `stop` is set.

    With fault injection on, it first refuses to start (FaultInjectionRefusedError) unless the
    registry serves only models of fault-enabled trainers (training.faults explains why).
    """
    if settings.fault_injection:
        faults_dir = settings.faults_dir.resolve()
        log.warning(
            "FAULT INJECTION IS ON (RELEARN_FAULT_INJECTION=true): this trainer acts on "
            "%s/<model type>.degrade and %s/crash.<point>; demos and tests only",
            faults_dir,
            faults_dir,
        )
        registry = RegistryHttp(settings.registry_url, settings.registry_timeout)
        try:
            check_registry_is_a_test_bed(registry, settings.fault_injection_registry_wait_seconds)
        finally:
            registry.close()
        log.warning(
            "fault injection allowed: registry %s serves only fault-injection models (or none)",
            settings.registry_url,
        )
    worker = build_worker(settings)
    web = trainer_web(settings, worker)
    web.start()  # binds the port now: a taken one stops the trainer before it consumes
    log.info(
        "trainer starting bootstrap=%s group=%s artifacts=%s registry=%s gate_unavailable=%s "
        "fault_injection=%s",
        settings.bootstrap_servers,
        settings.trainer_group_id,
        settings.resolved_artifact_dir(),
        settings.registry_url,
        settings.gate_unavailable_policy.value,
        "on" if settings.fault_injection else "off",
    )
    try:
        worker.run(make_command_consumer(settings), stop)
    finally:
        web.stop()
