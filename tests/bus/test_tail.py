"""TopicTail follows whole topics for a view: it must outlive a bad record and a broker that is
not there yet, or the view stays stale for the rest of the process's life."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bus.admin import ensure_topics
from bus.clients import make_producer
from bus.local_broker import ClusterLayout, down, free_port, up
from bus.records import Record
from bus.tail import TopicTail


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = make_producer(bootstrap)
    for value in values:
        producer.produce(topic, value, b"k")
    assert producer.flush(30) == 0


def test_a_record_that_apply_cannot_read_is_skipped_and_the_tail_goes_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}tailed"
    ensure_topics(kafka_bootstrap, {topic: {}}, partitions=2, replication=1)
    produce(kafka_bootstrap, topic, [b"1", b"poison", b"2"])
    applied: list[int] = []
    tail = TopicTail(
        kafka_bootstrap, [topic], lambda _t, _k, value: applied.append(int(value or b"")), "t"
    )
    tail.start()
    try:
        wait_for(lambda: tail.caught_up, 30, "the tail never caught up past the bad record")
        produce(kafka_bootstrap, topic, [b"3"])
        wait_for(lambda: 3 in applied, 30, "a record after the bad one was not applied")
        assert sorted(applied) == [1, 2, 3]
        assert tail.is_alive()
    finally:
        tail.stop()
        tail.join(10)


def test_a_tail_decodes_records_and_skips_the_ones_it_cannot_decode(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}decoded"
    ensure_topics(kafka_bootstrap, {topic: {}}, partitions=1, replication=1)
    produce(kafka_bootstrap, topic, [b"1", b"not a number", b"2"])
    seen: list[Record[int]] = []
    tail: TopicTail[int] = TopicTail(
        kafka_bootstrap,
        [topic],
        name="decoded",
        on_record=seen.append,
        decode=lambda _topic, raw: int(raw or b""),
    )
    tail.start()
    try:
        wait_for(lambda: tail.caught_up, 30, "the tail never caught up past the unreadable record")
        assert [(r.value, r.offset, r.partition, r.key) for r in seen] == [
            (1, 0, 0, b"k"),
            (2, 2, 0, b"k"),
        ]
        assert all(r.topic == topic and r.timestamp and r.timestamp > 1e9 for r in seen)
        assert tail.brokers == 1 and tail.assigned == {(topic, 0)} and tail.is_alive()
    finally:
        tail.stop()
        tail.join(10)


def test_a_lone_record_reaches_the_tail_without_waiting_out_its_poll_timeout(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A view (the route cache's follower, the bench's recorder) hears a lone record at once:
    a batch read waiting for 5,000 records would hold it until the poll timeout ran out."""
    topic = f"{topic_prefix}lone"
    ensure_topics(kafka_bootstrap, {topic: {}}, partitions=1, replication=1)
    produce(kafka_bootstrap, topic, [b"before"])
    seen: dict[bytes, float] = {}
    tail: TopicTail[bytes] = TopicTail(
        kafka_bootstrap,
        [topic],
        name="lone",
        on_record=lambda record: seen.setdefault(record.value or b"", time.monotonic()),
        poll_timeout=10.0,
    )
    tail.start()
    try:
        wait_for(lambda: tail.caught_up, 30, "the tail never caught up")
        time.sleep(0.5)  # the tail is now inside a poll with 9.5 s of its timeout left
        sent = time.monotonic()
        produce(kafka_bootstrap, topic, [b"lone"])
        wait_for(lambda: b"lone" in seen, 30, "the lone record never came")
        assert seen[b"lone"] - sent < 4.0, "the record waited for the poll timeout"
    finally:
        tail.stop()
        tail.join(15)


def test_a_tail_started_before_its_broker_follows_it_once_it_is_up(tmp_path: Path) -> None:
    layout = ClusterLayout(base_dir=tmp_path, nodes=1, port=free_port(count=2))
    bootstrap = layout.bootstrap_servers
    applied: list[bytes | None] = []
    tail = TopicTail(bootstrap, ["late"], lambda _t, _k, value: applied.append(value), "late")
    tail.start()
    try:
        time.sleep(12)  # past the first metadata request's 10 s timeout: the retry path
        assert tail.is_alive() and not tail.caught_up
        up(layout)
        ensure_topics(bootstrap, {"late": {}}, partitions=1, replication=1)
        produce(bootstrap, "late", [b"hello"])
        wait_for(lambda: applied == [b"hello"], 60, "the tail did not follow the late broker")
        assert tail.is_alive()
    finally:
        tail.stop()
        tail.join(15)
        down(layout)
