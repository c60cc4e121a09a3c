"""The retrain-commands consumer: one command at a time, trained in a thread while polling goes on."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer
from pydantic import ValidationError

from bus.consumer_loop import NO_RETRY, Ack, ConsumerLoop
from bus.logs import bind_log_ids, log_context
from bus.records import where
from contracts.events import (
    MAX_NAME_LENGTH,
    Lineage,
    RegistryEventOccurred,
    RegistryEventType,
    RetrainRequested,
    to_json,
    utc_now,
)
from contracts.topics import Topics
from training.artifacts import ArtifactStore
from training.backlog import CommandBacklog
from training.errors import InvalidCommandError, TrainingError
from training.faults import FaultHooks
from training.fit import EpochReport, warm_up
from training.ledger import CommandLedger, RecordedOutcome
from training.metrics import CommandStatus, TrainerMetrics
from training.pipeline import TrainingPipeline, deployment_event, package_version, rejection_event
from training.samples import SampleSource

log = logging.getLogger(__name__)

SUPERSEDED = "superseded"  # the reason of a command answered without training


class PublishFailedError(Exception):
    """The outcome could not be written; the offset stays uncommitted and the worker stops."""


class TrainingCancelledError(Exception):
    """The worker is stopping; the command is left uncommitted for the next owner."""


@dataclass(frozen=True)
class CommandOutcome:
    """A command's recorded answer, and what the metrics count of it once it is published."""

    recorded: RecordedOutcome
    republished: bool
    timings: dict[str, float] = field(default_factory=dict)
    model_type: str = ""
    status: CommandStatus = CommandStatus.REJECTED
    reason: str | None = None  # a RejectionReason's code when rejected
    samples: int = 0  # training samples read for it


class RetrainWorker:
    """Settles each retrain command once: a model-deployed event or a deployment_rejected one."""

    def __init__(
        self,
        *,
        topics: Topics,
        pipeline: TrainingPipeline,
        samples: SampleSource,
        artifacts: ArtifactStore,
        ledger: CommandLedger,
        producer: Producer,
        window: timedelta,
        publish_timeout: float = 30.0,
        backlog: CommandBacklog | None = None,
        faults: FaultHooks | None = None,
        metrics: TrainerMetrics | None = None,
    ) -> None:
        self.topics = topics
        self.pipeline = pipeline
        self.samples = samples
        self.artifacts = artifacts
        self.ledger = ledger
        self.producer = producer
        self.window = window
        self.publish_timeout = publish_timeout
        self.backlog = backlog  # None: every command trains (no look-ahead)
        self.faults = faults  # crash points for the chaos tests; None in production
        self.metrics = metrics or TrainerMetrics(pipeline.catalog.names())
        self.consuming = threading.Event()  # set while the consumer loop runs (/readyz)
        self._stopping = threading.Event()

    # -- one command (runs on the training thread) --------------------------------------------

    # The command's log ids are scoped to the call: whichever thread makes it (the loop's, or a
    # test's), they never outlive the command (a fresh context per call).
    @log_context()
    def handle_retrain_command(
        self,
        key: bytes | None,
        value: bytes | None,
        source: str,
        now: datetime | None = None,
        position: tuple[str, int, int] | None = None,
    ) -> CommandOutcome:
        """Train for one command, or recall what it yielded; the outcome is recorded, not sent.

        A command with a newer one for its model type queued behind it (`position` is where it
        was read) is answered `superseded` without training: the newer one trains on the
        newest window, which holds these samples too. So a backlog trains once, not N times."""
        try:
            command = RetrainRequested.model_validate_json(value or b"")
            if "command_id" not in command.model_fields_set:
                # Parsing would invent a new id on every read: a replay after a crash would
                # train and publish a second version for the same command.
                raise ValidationError.from_exception_data(
                    "RetrainRequested",
                    [{"type": "missing", "loc": ("command_id",), "input": {}}],
                )
        except ValidationError as exc:
            return self._reject_unreadable(key, source, exc)
        bind_log_ids(model_type=command.model_type, command_id=command.command_id)
        known = self.ledger.outcome_of(command.command_id)
        if known is not None:
            log.info(
                "command already settled command_id=%s model_type=%s outcome=%s event_id=%s",
                command.command_id,
                command.model_type,
                known.kind,
                known.event_id,
            )
            return CommandOutcome(
                known, True, model_type=command.model_type, status=CommandStatus.DUPLICATE
            )
        superseding = self._newer_queued(command, position)
        if superseding is not None:
            return self._supersede(command, superseding)

        log.info(
            "retrain command command_id=%s model_type=%s reason=%s source=%s",
            command.command_id,
            command.model_type,
            command.reason,
            source,
        )
        timings: dict[str, float] = {}
        samples = 0
        reason: str | None = None
        try:
            spec = self.pipeline.spec_for(command.model_type)
            started = time.perf_counter()
            read = self.samples.read_window(spec, (now or utc_now()) - self.window)
            timings["read"] = time.perf_counter() - started
            samples = len(read.dataset)
            candidate = self.pipeline.build(spec, read.dataset, on_epoch=self._check_stop)
            timings.update(candidate.timings)
            started = time.perf_counter()
            stored = self.artifacts.put(spec.name, candidate.proven.onnx)
            timings["store"] = time.perf_counter() - started
            if self.faults is not None:
                self.faults.crash_point("after_artifact")
            lineage = Lineage(
                topic=read.topic,
                offsets=read.lineage_offsets(),
                seed=self.pipeline.config.hyper.seed,
                package_version=package_version(),
                trainer=candidate.trainer,
            )
            event = deployment_event(candidate, stored, command.command_id, lineage)
            outcome = RecordedOutcome(
                command.command_id,
                "deployed",
                event.deployment_id,
                self.topics.model_deployed,
                spec.name.encode(),
                to_json(event),
            )
            log.info(
                "model ready command_id=%s model_type=%s deployment_id=%s sha256=%s "
                "test_loss=%.6f gate=%s",
                command.command_id,
                spec.name,
                event.deployment_id,
                event.sha256,
                event.metrics.test_loss,
                candidate.gate.outcome,
            )
        except TrainingError as exc:
            log.error(
                "deployment rejected command_id=%s model_type=%s reason=%s: %s",
                command.command_id,
                command.model_type,
                exc.reason,
                exc.detail,
            )
            reason = exc.reason.value
            rejection = rejection_event(command.model_type, command.command_id, exc)
            outcome = RecordedOutcome(
                command.command_id,
                "rejected",
                rejection.event_id,
                self.topics.registry_events,
                command.model_type.encode(),
                to_json(rejection),
            )
        recorded = self.ledger.record(outcome)
        return CommandOutcome(
            recorded,
            republished=False,
            timings=timings,
            model_type=command.model_type,
            status=CommandStatus.PUBLISHED
            if recorded.kind == "deployed"
            else CommandStatus.REJECTED,
            reason=reason,
            samples=samples,
        )

    def _newer_queued(
        self, command: RetrainRequested, position: tuple[str, int, int] | None
    ) -> RetrainRequested | None:
        """The newest command for the same type queued after this one and not settled yet."""
        if self.backlog is None or position is None:
            return None
        newest = self.backlog.newest_after(*position, command.model_type)
        if (
            newest is None
            or newest.command_id == command.command_id
            or self.ledger.outcome_of(newest.command_id) is not None  # a replay of an old one
        ):
            return None
        return newest

    def _supersede(self, command: RetrainRequested, newer: RetrainRequested) -> CommandOutcome:
        log.info(
            "retrain command superseded command_id=%s model_type=%s by command_id=%s: "
            "nothing trained",
            command.command_id,
            command.model_type,
            newer.command_id,
        )
        answer = RegistryEventOccurred(
            type=RegistryEventType.DEPLOYMENT_REJECTED,
            model_type=command.model_type,
            reason=SUPERSEDED,
            details={
                "command_id": command.command_id,
                "reason": SUPERSEDED,
                "detail": f"a newer command for {command.model_type} is queued; it trains on "
                "the newest window instead",
                "superseded_by": newer.command_id,
            },
        )
        outcome = RecordedOutcome(
            command.command_id,
            "rejected",
            answer.event_id,
            self.topics.registry_events,
            command.model_type.encode(),
            to_json(answer),
        )
        return CommandOutcome(
            self.ledger.record(outcome),
            republished=False,
            model_type=command.model_type,
            status=CommandStatus.SUPERSEDED,
        )

    def _reject_unreadable(
        self, key: bytes | None, source: str, exc: ValidationError
    ) -> CommandOutcome:
        ledger_id = f"unreadable:{source}"
        known = self.ledger.outcome_of(ledger_id)
        model_type = (key or b"")[:MAX_NAME_LENGTH].decode("utf-8", errors="replace")
        if known is not None:
            return CommandOutcome(
                known, True, model_type=model_type, status=CommandStatus.DUPLICATE
            )
        errors = exc.errors()
        first: dict[str, Any] = dict(errors[0]) if errors else {}
        error = InvalidCommandError(
            f"not a valid retrain command: {first.get('type', 'invalid')} at "
            f"{'.'.join(str(p) for p in first.get('loc', ())) or 'top level'}: {first.get('msg', exc)}"
        )
        # the key names the model type for the rejection: at most a model type's length of it
        log.error("deployment rejected source=%s reason=%s: %s", source, error.reason, error.detail)
        rejection = rejection_event(model_type, None, error, extra={"source": source})
        outcome = RecordedOutcome(
            ledger_id,
            "rejected",
            rejection.event_id,
            self.topics.registry_events,
            model_type.encode(),
            to_json(rejection),
        )
        return CommandOutcome(
            self.ledger.record(outcome),
            republished=False,
            model_type=model_type,
            status=CommandStatus.REJECTED,
            reason=error.reason.value,
        )

    def _check_stop(self, report: EpochReport) -> None:
        if self._stopping.is_set():
            raise TrainingCancelledError(f"stopping at epoch {report.epoch}")

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, outcome: RecordedOutcome) -> None:
        """Write the outcome and wait for the broker's acknowledgement."""
        failures: list[Any] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        self.producer.produce(
            outcome.topic, key=outcome.key, value=outcome.value, on_delivery=delivered
        )
        remaining = self.producer.flush(self.publish_timeout)
        if failures or remaining:
            raise PublishFailedError(
                f"publishing {outcome.kind} {outcome.event_id} to {outcome.topic} failed: "
                f"{failures or f'{remaining} message(s) undelivered'}"
            )
        log.info(
            "published %s topic=%s event_id=%s command_id=%s",
            outcome.kind,
            outcome.topic,
            outcome.event_id,
            outcome.command_id,
            extra={"event_id": outcome.event_id},
        )

    # -- the consumer loop --------------------------------------------------------------------

    def run(self, consumer: Consumer, stop: threading.Event) -> None:
        """Poll until `stop`; while a command trains its partitions are paused but polling goes on,
        so a run longer than max.poll.interval.ms never triggers a rebalance."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training")
        # torch's lazy first-step setup (~2 s) is paid now, on the training thread, not by a command.
        spec = self.pipeline.catalog.get(self.pipeline.catalog.names()[0])
        if spec is not None:
            executor.submit(warm_up, spec, self.pipeline.config.hyper.threads)

        def before_close(training: bool) -> None:
            self._stopping.set()
            if training:
                log.info("stopping with a command in training; it stays uncommitted")
            executor.shutdown(wait=True, cancel_futures=True)

        loop: ConsumerLoop[CommandOutcome] = ConsumerLoop(
            "trainer",
            [self.topics.retrain_commands],
            self._handle_message,
            # Nothing is retried: anything but a TrainingError is not a verdict, it stops the
            # worker; an unreadable command is answered (deployment_rejected), never poison.
            retry=NO_RETRY,
            ack=Ack.COMMIT,  # only after the outcome is published; the ledger covers a redelivery
            on_done=self._settle,
            offload=executor,
            before_close=before_close,
        )
        log.info("trainer consuming %s", self.topics.retrain_commands)
        self.consuming.set()
        try:
            loop.run(consumer, stop)
        finally:
            self.consuming.clear()
            self._stopping.clear()
            log.info("trainer stopped")

    def _handle_message(self, message: Message) -> CommandOutcome:
        position = where(message)
        source = "/".join(str(part) for part in position)
        with self.metrics.in_progress.track_inprogress():
            return self.handle_retrain_command(
                message.key(), message.value(), source, None, position
            )

    def _settle(self, _message: Message, outcome: CommandOutcome) -> None:
        """Publish the recorded outcome; the loop commits the command's offset only after this.
        The one place a command is counted: once its answer is on the topic."""
        if self.faults is not None:
            self.faults.crash_point("before_publish")
        with log_context(model_type=outcome.model_type, command_id=outcome.recorded.command_id):
            started = time.perf_counter()
            self.publish(outcome.recorded)
            timings = dict(outcome.timings)
            if outcome.status is CommandStatus.PUBLISHED:
                timings["publish"] = time.perf_counter() - started
            self.metrics.settled(
                outcome.model_type, outcome.status, outcome.reason, outcome.samples, timings
            )
            if outcome.timings:
                log.info(
                    "command settled command_id=%s timings %s",
                    outcome.recorded.command_id,
                    " ".join(f"{k}={v:.3f}s" for k, v in outcome.timings.items()),
                )
