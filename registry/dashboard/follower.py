"""Reads registry-events and retrain-commands from the beginning into the dashboard's history.

No consumer group offsets: the follower assigns every partition at the beginning on each start
and rebuilds the (bounded, in-memory) history, so a restarted registry shows the whole story
again. It also probes the broker every few seconds, which is how the page learns that Kafka
is unreachable.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bus.clients import make_consumer
from registry.dashboard.history import DashboardHistory

log = logging.getLogger(__name__)


class HistoryFollower:
    """A daemon thread feeding `history`; `kafka_status()` tells the page whether Kafka answers."""

    def __init__(
        self,
        bootstrap_servers: str,
        registry_events_topic: str,
        retrain_commands_topic: str,
        history: DashboardHistory,
        poll_timeout: float = 0.5,
        probe_interval: float = 3.0,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._registry_events = registry_events_topic
        self._retrain_commands = retrain_commands_topic
        self.history = history
        self._poll_timeout = poll_timeout
        self._probe_interval = probe_interval
        self._stop = threading.Event()
        self._assigned: set[tuple[str, int]] = set()
        self.kafka_ok: bool | None = None  # None until the first probe
        self.kafka_detail = "not probed yet"
        self.last_probe: float | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-history", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def kafka_status(self) -> dict[str, Any]:
        return {
            "ok": self.kafka_ok,
            "detail": self.kafka_detail,
            "bootstrap_servers": self._bootstrap,
            "following": sorted({topic for topic, _ in self._assigned}),
            "records_applied": self.history.records_applied,
            "follower_alive": self._thread.is_alive(),
        }

    def _run(self) -> None:
        # A group id is required by librdkafka even with manual assignment; nothing is committed.
        consumer = make_consumer(
            self._bootstrap,
            f"relearn-dashboard-{uuid.uuid4().hex[:8]}",
            **{"enable.auto.commit": False, "log_level": 0},
        )
        next_probe = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_probe:
                    self._probe_and_assign(consumer)
                    next_probe = time.monotonic() + self._probe_interval
                if not self._assigned:
                    self._stop.wait(self._poll_timeout)
                    continue
                message = consumer.poll(self._poll_timeout)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("dashboard follower error: %s", error)
                    continue
                self._apply(
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                    message.value(),
                )
        except Exception:
            log.exception("dashboard history follower stopped")
            self.kafka_ok = False
            self.kafka_detail = "the dashboard's history follower stopped; see the registry log"
        finally:
            consumer.close()

    def _probe_and_assign(self, consumer: Consumer) -> None:
        """List the topics (the reachability probe), and assign partitions not assigned yet."""
        try:
            metadata = consumer.list_topics(timeout=2.0)
        except Exception as exc:
            self.kafka_ok = False
            self.kafka_detail = f"Kafka at {self._bootstrap} does not answer: {exc}"
            return
        self.last_probe = time.time()
        if not metadata.brokers:
            self.kafka_ok = False
            self.kafka_detail = f"Kafka at {self._bootstrap} lists no broker"
            return
        self.kafka_ok = True
        self.kafka_detail = f"{len(metadata.brokers)} broker(s) at {self._bootstrap}"
        new: list[TopicPartition] = []
        for topic in (self._registry_events, self._retrain_commands):
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                continue
            for partition in described.partitions:
                if (topic, partition) not in self._assigned:
                    new.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        if new:
            consumer.incremental_assign(new)
            self._assigned.update((tp.topic, tp.partition) for tp in new)
            log.info("dashboard follows %s", ", ".join(f"{t.topic}[{t.partition}]" for t in new))

    def _apply(self, topic: str, partition: int, offset: int, raw: bytes | None) -> None:
        try:
            value = json.loads(raw or b"")
        except ValueError:
            log.warning(
                "dashboard skips an unreadable record topic=%s partition=%s offset=%s",
                topic,
                partition,
                offset,
            )
            return
        if not isinstance(value, dict):
            return
        if topic == self._registry_events:
            self.history.apply_registry_event(value, (topic, partition), offset)
        else:
            self.history.apply_retrain_command(value, (topic, partition), offset)
