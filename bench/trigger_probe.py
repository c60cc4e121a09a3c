"""The trigger-latency probe of bench/streams_throughput.py and bench/peers/run.py: load, probes, timing."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import orjson
from confluent_kafka import Consumer, Producer

from bus.clients import make_producer

BACKGROUND_TYPE = "calling_score"
PROBE_TYPE = "outcome_prediction"


def outcome_event(model_type: str, subject: str) -> bytes:
    """One valid outcome event of `model_type`, a fresh event id, occurred now."""
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "model_type": model_type,
            "model_version": "v0.0",
            "subject_id": subject,
            "features": [0.5] * 23,
            "prediction": 0.5,
            "outcome_score": 0.5,
            "positive_outcome": True,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    )


class BackgroundLoad:
    """calling_score outcome events at `rate` per second, in 50 ms ticks, on a thread of its own
    until `stop`; `sent` counts them."""

    TICK = 0.05

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.sent = 0
        self._bootstrap = bootstrap
        self._topic = topic
        self._per_tick = max(1, int(rate * self.TICK))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-background", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        producer = make_producer(self._bootstrap)
        while not self._stop.is_set():
            began = time.perf_counter()
            for i in range(self._per_tick):
                subject = f"bg-{self.sent + i}"
                producer.produce(
                    self._topic, key=subject, value=outcome_event(BACKGROUND_TYPE, subject)
                )
            self.sent += self._per_tick
            producer.poll(0)
            time.sleep(max(0.0, self.TICK - (time.perf_counter() - began)))
        producer.flush(30)


def send_probes(producer: Producer, topic: str, crossing: int, count: int) -> None:
    """`count` outcome_prediction events short of a crossing, flushed."""
    for i in range(count):
        subject = f"probe-{crossing}-{i}"
        producer.produce(topic, key=subject, value=outcome_event(PROBE_TYPE, subject))
    producer.flush(30)


def time_to_command(
    producer: Producer, topic: str, crossing: int, commands: Consumer, timeout: float
) -> float | None:
    """Seconds from producing the crossing event to its outcome_prediction command on the
    consumer's retrain-commands (None: none within `timeout`)."""
    subject = f"probe-{crossing}-cross"
    sent_at = time.perf_counter()
    producer.produce(topic, key=subject, value=outcome_event(PROBE_TYPE, subject))
    producer.flush(30)
    while time.perf_counter() - sent_at <= timeout:
        for message in commands.consume(100, timeout=0.01):
            if (
                message.error() is None
                and orjson.loads(message.value())["model_type"] == PROBE_TYPE
            ):
                return time.perf_counter() - sent_at
    return None
