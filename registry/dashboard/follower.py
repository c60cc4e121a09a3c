"""Reads registry-events and retrain-commands from the beginning into the dashboard's history.

No consumer group offsets: the follower assigns every partition at the beginning on each start
and rebuilds the (bounded, in-memory) history, so a restarted registry shows the whole story
again. It also probes the broker every few seconds, which is how the page learns that Kafka
is unreachable.
"""

from __future__ import annotations

import json
from typing import Any

from bus.records import Record
from bus.tail import TopicTail
from registry.dashboard.history import DashboardHistory


def _json_object(_topic: str, raw: bytes | None) -> dict[str, Any]:
    value = json.loads(raw or b"")
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {type(value).__name__}")
    return value


class HistoryFollower:
    """A tail feeding `history`; `kafka_status()` tells the page whether Kafka answers."""

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
        self.history = history
        self._tail: TopicTail[dict[str, Any]] = TopicTail(
            bootstrap_servers,
            [registry_events_topic, retrain_commands_topic],
            name="dashboard-history",
            on_record=self._apply,
            decode=_json_object,
            probe_interval=probe_interval,
            refresh_interval=probe_interval,  # the page's Kafka notice is this fresh
            probe_timeout=2.0,
            poll_timeout=poll_timeout,
        )

    def start(self) -> None:
        self._tail.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._tail.stop()
        self._tail.join(timeout)

    @property
    def last_probe(self) -> float | None:
        return self._tail.last_probe

    def kafka_status(self) -> dict[str, Any]:
        tail = self._tail
        if not tail.is_alive() and tail.brokers is not None:
            ok, detail = False, "the dashboard's history follower stopped; see the registry log"
        elif tail.brokers is None:
            ok, detail = None, "not probed yet"
        elif tail.probe_error is not None:
            ok, detail = False, f"Kafka at {self._bootstrap} does not answer: {tail.probe_error}"
        elif tail.brokers == 0:
            ok, detail = False, f"Kafka at {self._bootstrap} lists no broker"
        else:
            ok, detail = True, f"{tail.brokers} broker(s) at {self._bootstrap}"
        return {
            "ok": ok,
            "detail": detail,
            "bootstrap_servers": self._bootstrap,
            "following": sorted({topic for topic, _ in tail.assigned}),
            "records_applied": self.history.records_applied,
            "follower_alive": tail.is_alive(),
        }

    def _apply(self, record: Record[dict[str, Any]]) -> None:
        source = (record.topic, record.partition)
        if record.topic == self._registry_events:
            self.history.apply_registry_event(record.value, source, record.offset)
        else:
            self.history.apply_retrain_command(record.value, source, record.offset)
