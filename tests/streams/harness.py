"""Real streams workers as subprocesses, and the Kafka reads the streams tests compare with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from bus.clients import make_admin, make_consumer, make_producer, watermark_offsets
from bus.local_broker import free_port

REPO = Path(__file__).resolve().parents[2]


class StreamsWorker:
    """One `relearn streams` process with its own web port and data directory."""

    def __init__(
        self, bootstrap: str, prefix: str, port: int, data_dir: Path, **settings: str
    ) -> None:
        self.port = port
        self.data_dir = data_dir
        self.log_path = data_dir.with_suffix(".log")
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RELEARN_TOPIC_PREFIX": prefix,
            "RELEARN_STREAMS_WEB_PORT": str(port),
            "RELEARN_STREAMS_DATA_DIR": str(data_dir),
            "RELEARN_STREAMS_COMMIT_INTERVAL_SECONDS": "0.5",
            # No trainer answers here: hold nothing, so every crossing sends its command and the
            # counts are checked exactly (tests of the rule itself set a timeout).
            "RELEARN_RETRAIN_PENDING_TIMEOUT_SECONDS": "0",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def alone(cls, bootstrap: str, prefix: str, tmp_path: Path, **settings: str) -> StreamsWorker:
        """The one worker of a test: a free port, its data under `tmp_path / "worker"`."""
        return cls(bootstrap, prefix, free_port(), tmp_path / "worker", **settings)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StreamsWorker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relearn.cli",
                "--log-level",
                os.environ.get("RELEARN_STREAMS_TEST_LOG_LEVEL", "INFO"),
                "streams",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_web(self, timeout: float = 90.0) -> None:
        wait_until(
            lambda: get_json(f"{self.url}/healthz") is not None,
            timeout,
            f"worker on port {self.port} did not answer; see {self.log_path}",
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def get_json(url: str, timeout: float = 5.0) -> Any:
    """The JSON a web view returns, or None when it does not answer 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_until(condition: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s: {message}")


def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]], flush_timeout: float = 30
) -> int:
    producer = make_producer(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10_000})
    sent = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
    assert producer.flush(flush_timeout) == 0
    return sent


def _end_offsets(consumer: Any, topic: str) -> dict[int, int]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    # retried: a topic created a moment ago may answer "not leader" for a while
    return {p: watermark_offsets(consumer, TopicPartition(topic, p))[1] for p in partitions}


def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end (high watermark): how many records the broker holds for it."""
    consumer = make_consumer(bootstrap, f"reader-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        return _end_offsets(consumer, topic)
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every message of a topic, from the beginning to the current end of each partition."""
    consumer = make_consumer(bootstrap, f"reader-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        ends = _end_offsets(consumer, topic)
        partitions = list(ends)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []
        remaining = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=0.5):
                if message.error():
                    continue
                messages.append(message)
                partition, offset = message.partition(), message.offset()
                if partition is not None and offset is not None and offset >= ends[partition] - 1:
                    remaining.discard(partition)
        return messages
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> list[int]:
    """The group's committed offset of each partition of `topic` (negative: none yet)."""
    consumer = make_consumer(bootstrap, group, **{"enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return [tp.offset for tp in committed]
    finally:
        consumer.close()


def consumer_lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages of `topic` the group has not committed yet (all partitions)."""
    consumer = make_consumer(bootstrap, group, **{"enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        tps = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        committed = consumer.committed(tps, timeout=10)
        lag = 0
        for tp in committed:
            end = consumer.get_watermark_offsets(tp, timeout=10)[1]
            lag += end - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    admin = make_admin(bootstrap)
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result(30)
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass


def group_members_with_partitions(bootstrap: str, group: str) -> int:
    """How many members of a consumer group hold at least one partition (0 if unknown)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # noqa: BLE001 - a group not described yet has no members
        return 0
    if described.state != ConsumerGroupState.STABLE:
        return 0
    return sum(1 for m in described.members if m.assignment and m.assignment.topic_partitions)
