"""Builds the faust app from settings: topics, tables, agents, the leader's timer, the web views.

Agents only decode, call a function of `streams.processing` over the tables, and send what it
returns. Nothing here connects to Kafka: that happens when a worker starts the app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.exceptions import SameNode

from contracts.events import to_json  # noqa: F401  (re-exported for callers building events)
from streams import processing, rules
from streams.processing import SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER, Output
from streams.registry_follower import RegistryFollower
from streams.settings import StreamsSettings
from streams.transport import LowLatencyTransport

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


def _header(headers: Any, name: str) -> bytes | None:
    items: Iterable[tuple[str, bytes]] = headers.items() if isinstance(headers, dict) else headers
    for key, value in items or ():
        if key == name:
            return value
    return None


def create_app(settings: StreamsSettings) -> faust.App:
    """The faust app for these settings (`faust -A streams.app worker`, `relearn streams`)."""
    partitions = settings.topic_partitions
    # The faust worker expects its data directory to exist before it starts.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        topic_partitions=partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=0.005,
        producer_max_batch_size=262_144,
        broker_commit_interval=settings.streams_commit_interval_seconds,
        broker_session_timeout=settings.streams_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.streams_session_timeout_seconds / 5),
        broker_rebalance_timeout=2 * settings.streams_session_timeout_seconds,
        # Standbys double every changelog read; recovery replays the changelog instead.
        table_standby_replicas=0,
        web_enabled=True,
        web_bind=settings.streams_web_host,
        web_host=settings.streams_web_host,
        web_port=settings.streams_web_port,
        canonical_url=settings.web_url,
    )
    app.transport = LowLatencyTransport(app.conf.broker_consumer, app)
    # Table writes queue changelog sends; at faust's default of 100 queued sends the agents
    # stall until the queue drains (faust-streaming issue #173), which halves throughput.
    app.producer.buffer.max_messages = 10_000
    topics = settings.topics
    catalog = settings.model_types()
    stream_rules = processing.StreamRules(
        retrain_sample_threshold=settings.retrain_sample_threshold,
        retrain_max_age_seconds=settings.retrain_max_age_days * SECONDS_PER_DAY,
        rollback_alpha=settings.rollback_alpha,
        abtest_min_samples=settings.abtest_min_samples,
    )
    follower = RegistryFollower(settings.bootstrap_servers, topics.registry_events)

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    outcome_events = app.topic(topics.outcome_events, **raw)
    training_samples = app.topic(topics.training_samples, **raw)
    schedule_ticks = app.topic(
        f"{settings.app_id}-schedule-ticks", partitions=partitions, internal=True, **raw
    )
    outputs = {
        Output.RETRAIN: app.topic(topics.retrain_commands, **raw),
        Output.REGISTRY: app.topic(topics.registry_commands, **raw),
    }
    dead_letters = app.topic(topics.outcome_events_dlq, **raw)
    internal_dead_letters = app.topic(topics.internal_dlq, **raw)

    ttl = rules.dedupe_ttl_seconds(settings.dedupe_window_hours)
    table: dict[str, Any] = {
        "key_type": str,  # keys and values are JSON on the changelog
        "partitions": partitions,
    }
    # event_id -> [partition, offset] where first seen; RocksDB TTL and changelog retention
    # (both at least the window) keep disk bounded.
    seen = app.Table(
        "seen-event-ids",
        options={"ttl": ttl},
        extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(ttl * 1000)},
        **table,
    )
    rejections = app.Table("rejections", **table)
    model_types = app.Table("model-types", **table)
    performance = app.Table("daily-performance", **table)

    @app.agent(outcome_events, name="on-outcome-event")
    async def on_outcome_event(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            result = processing.handle_outcome(
                event.value, message.partition, message.offset, seen, rejections, catalog,
                datetime.now(UTC),
            )
            if result.rejected is not None:
                log.warning(
                    "rejected topic=%s partition=%s offset=%s reason=%s detail=%s",
                    message.topic, message.partition, message.offset,
                    result.rejected.reason.value, result.rejected.detail,
                )
                await dead_letters.send(
                    key=message.key,
                    value=event.value,
                    headers=[
                        ("error.reason", result.rejected.reason.value.encode()),
                        ("error.detail", result.rejected.detail.encode()[:4096]),
                        ("source.topic", message.topic.encode()),
                        ("source.partition", str(message.partition).encode()),
                        ("source.offset", str(message.offset).encode()),
                    ],
                    force=True,
                )
            elif result.forward is not None:
                await training_samples.send(
                    key=result.model_type,
                    value=result.forward,
                    headers=[
                        (SOURCE_PARTITION_HEADER, str(message.partition).encode()),
                        (SOURCE_OFFSET_HEADER, str(message.offset).encode()),
                    ],
                    force=True,
                )

    async def send_all(emitted: list[processing.Emitted]) -> None:
        for item in emitted:
            log.info("emit %s key=%s %s", item.output, item.key, item.value.decode())
            await outputs[item.output].send(key=item.key, value=item.value, force=True)

    @app.agent(training_samples, name="on-training-sample")
    async def on_training_sample(stream: faust.StreamT) -> None:
        async for event in stream.events():
            headers = event.message.headers
            partition = _header(headers, SOURCE_PARTITION_HEADER)
            offset = _header(headers, SOURCE_OFFSET_HEADER)
            if partition is None or offset is None:
                log.warning("training sample without source headers skipped: %s", event.message)
                continue
            message = event.message
            try:
                emitted = processing.handle_sample(
                    event.value, int(partition), int(offset), model_types, performance,
                    follower.views, stream_rules, time.time(), follower.caught_up,
                )
            except processing.MalformedSample as exc:
                log.warning(
                    "malformed training sample dead-lettered topic=%s partition=%s offset=%s: %s",
                    message.topic, message.partition, message.offset, exc,
                )
                await internal_dead_letters.send(
                    key=message.key,
                    value=event.value,
                    headers=[
                        ("error.reason", b"schema"),
                        ("error.detail", str(exc).encode()[:4096]),
                        ("source.topic", message.topic.encode()),
                        ("source.partition", str(message.partition).encode()),
                        ("source.offset", str(message.offset).encode()),
                    ],
                    force=True,
                )
                continue
            await send_all(emitted)

    @app.agent(schedule_ticks, name="on-schedule-tick")
    async def on_schedule_tick(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            await send_all(
                processing.handle_tick(
                    message.key.decode(), message.partition, message.offset, model_types,
                    follower.views, stream_rules, time.time(),
                )
            )

    @app.timer(settings.schedule_check_seconds, on_leader=True)
    async def ask_schedule() -> None:
        # Ticks go through a topic keyed by model type, so the worker owning that type decides.
        for name in catalog.names():
            await schedule_ticks.send(key=name, value=b"{}")

    @app.task
    async def follow_registry() -> None:
        await follower.run()

    async def answer_for(
        web: Any, request: Any, model_type: str, answer: Callable[[], Any]
    ) -> Any:
        """Answer here when this worker owns the model type's partition, else ask its owner."""
        if model_type not in catalog:
            return web.json({"detail": f"unknown model type {model_type!r}"}, status=404)
        try:
            # The owner of the model type's training-samples partition holds its table values.
            return await app.router.route_topic_req(training_samples, model_type, web, request)
        except SameNode:
            return web.json(answer())
        except Exception as exc:  # no assignment yet, or the owner does not answer (rebalance)
            log.info("cannot route %s for %s yet: %r", request.url, model_type, exc)
            return web.json({"detail": "partition owner not known yet, retry"}, status=503)

    @app.page("/performance/{model_type}")
    async def performance_page(web: Any, request: Any, model_type: str) -> Any:
        try:
            days = max(1, int(request.query.get("days", "7")))
        except ValueError:
            return web.json({"detail": "days must be a whole number"}, status=400)
        return await answer_for(
            web, request, model_type,
            lambda: processing.performance_rows(performance, model_type, days, datetime.now(UTC)),
        )

    @app.page("/samples/{model_type}")
    async def samples_page(web: Any, request: Any, model_type: str) -> Any:
        return await answer_for(
            web, request, model_type,
            lambda: processing.samples_view(
                model_types, model_type, settings.retrain_sample_threshold
            ),
        )

    @app.page("/abtest/{model_type}")
    async def abtest_page(web: Any, request: Any, model_type: str) -> Any:
        return await answer_for(
            web, request, model_type, lambda: processing.abtest_view(model_types, model_type)
        )

    @app.page("/rejections")
    async def rejections_page(web: Any, request: Any) -> Any:
        # This worker's partitions only; every rejected event is also on the dead-letter topic.
        return web.json(processing.rejection_counts(rejections))

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({
            "status": "ok",
            "registry_events_seen": follower.events_seen,
            "registry_caught_up": follower.caught_up,
        })

    return app
