"""Outbox publishers of several registry instances on one database send each row once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import orjson

from bus.clients import make_producer
from contracts.events import RetrainReason, RetrainRequested, to_json
from contracts.topics import TopicName, Topics
from registry.metrics import RegistryMetrics
from registry.outbox import OutboxPublisher
from registry.store import RegistryStore, open_store
from tests.streams.harness import read_topic

MT = "calling_score"
INSTANCES = 3
COMMANDS = 60


def test_instances_sharing_a_database_publish_each_row_once(
    database_url: str, kafka_bootstrap: str, topics: Topics
) -> None:
    """Three instances' publishers drain one outbox as fast as they can while rows arrive
    (no crash anywhere): every manual retrain reaches retrain-commands exactly once. Without a
    lock between them, two read the same unsent row and both send it (the chaos fuzz test's
    second lifespan of the same app saw exactly this: 2 commands sent twice)."""
    stores = [open_store(database_url) for _ in range(INSTANCES)]
    publishers = [
        OutboxPublisher(store, make_producer(kafka_bootstrap), topics, RegistryMetrics())
        for store in stores
    ]
    stop = threading.Event()
    errors: list[BaseException] = []

    def drain(publisher: OutboxPublisher) -> None:
        while not stop.is_set():
            try:
                publisher.publish_pending()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return

    threads = [threading.Thread(target=drain, args=(p,)) for p in publishers]
    for thread in threads:
        thread.start()
    sent: list[str] = []
    try:
        for i in range(COMMANDS):
            command = RetrainRequested(model_type=MT, reason=RetrainReason.MANUAL)
            stores[i % INSTANCES].enqueue(MT, TopicName.RETRAIN_COMMANDS, to_json(command))
            sent.append(command.command_id)
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while stores[0].unsent_events() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        for store in stores:
            store.close()
    assert not errors, errors
    found = Counter(
        orjson.loads(m.value())["command_id"]
        for m in read_topic(kafka_bootstrap, topics.retrain_commands)
    )
    assert set(found) == set(sent)
    assert {c: n for c, n in found.items() if n > 1} == {}


def test_a_row_whose_flush_timed_out_is_not_produced_again(
    store: RegistryStore, kafka_bootstrap: str, topics: Topics
) -> None:
    """A flush that returns before the delivery reports (a loaded broker; here a zero timeout)
    leaves its rows in flight: later rounds wait for their reports instead of producing them
    again, so each command is on the topic once."""
    publisher = OutboxPublisher(
        store, make_producer(kafka_bootstrap), topics, RegistryMetrics(), flush_timeout=0
    )
    sent = []
    for _ in range(20):
        command = RetrainRequested(model_type=MT, reason=RetrainReason.MANUAL)
        store.enqueue(MT, TopicName.RETRAIN_COMMANDS, to_json(command))
        sent.append(command.command_id)
    timed_out = 0
    deadline = time.monotonic() + 60
    while store.unsent_events() and time.monotonic() < deadline:
        try:
            publisher.publish_pending()
        except RuntimeError:
            timed_out += 1
        time.sleep(0.001)
    assert timed_out > 0, "every flush saw its reports: the timeout was never exercised"
    assert not store.unsent_events()
    found = Counter(
        orjson.loads(m.value())["command_id"]
        for m in read_topic(kafka_bootstrap, topics.retrain_commands)
    )
    assert sorted(found.elements()) == sorted(sent)
