"""A worker whose batch fails half-way must commit none of it: the next owner replays it.

The worker runs in this process (so a failure can be injected into its rules); the worker that
recovers is a real `relearn streams` process, compared with the ground truth.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from bus.clients import make_admin, make_producer
from contracts.topics import Topics
from streams import processing
from streams.settings import StreamsSettings
from streams.testing import outcome_events
from streams.worker import Worker
from tests.conftest import free_port
from tests.streams.harness import committed_offsets, produce, read_topic, wait_until
from tests.streams.test_streams_on_broker import (
    THRESHOLD,
    _all_counted,
    _assert_tables_equal_truth,
    _workers,
)

pytestmark = pytest.mark.integration


def test_a_batch_that_fails_half_way_commits_nothing_and_the_next_worker_counts_exactly(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages, truth = outcome_events(3_000, seed=43, invalid_rate=0.01, duplicate_rate=0.02)
    produce(kafka_bootstrap, topics.outcome_events, messages)

    real_handle_outcome = processing.handle_outcome
    calls = itertools.count()

    def fails_at_the_1500th(*args: Any, **kwargs: Any) -> processing.OutcomeResult:
        if next(calls) == 1_500:
            raise RuntimeError("injected failure in the middle of a batch")
        return real_handle_outcome(*args, **kwargs)

    monkeypatch.setattr(processing, "handle_outcome", fails_at_the_1500th)
    settings = StreamsSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        streams_data_dir=tmp_path / "failing",
        streams_web_port=free_port(),
        retrain_sample_threshold=THRESHOLD,
        retrain_pending_timeout_seconds=0,  # no trainer answers: one command per crossing
        streams_commit_interval_seconds=3_600,  # only leaving the group would commit
    )
    failing = Worker(settings)
    with pytest.raises(RuntimeError, match="injected failure"):
        failing.run()
    # Closing the consumer revoked its partitions; that used to commit the failed batch's
    # positions without their dedupe and table writes.
    offsets = committed_offsets(kafka_bootstrap, settings.app_id, topics.outcome_events)
    assert all(offset < 0 for offset in offsets), offsets
    assert failing.commits_refused and "injected failure" in failing.commits_refused

    monkeypatch.setattr(processing, "handle_outcome", real_handle_outcome)
    (recovering,) = _workers(kafka_bootstrap, topic_prefix, tmp_path, 1)
    try:
        recovering.start().wait_web()
        wait_until(lambda: _all_counted(recovering, truth), 90, "not all counted after replay")
        _assert_tables_equal_truth(recovering, truth)
    finally:
        recovering.stop()


def test_a_forward_the_broker_refuses_stops_the_worker_without_committing(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    # training-samples takes no record at all now: every forward's delivery fails
    limit = ConfigEntry("max.message.bytes", "50", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(
        ResourceType.TOPIC, topics.training_samples, incremental_configs=[limit]
    )
    admin = make_admin(kafka_bootstrap)  # kept alive until the change is done
    for done in admin.incremental_alter_configs([resource]).values():
        done.result(30)
    messages, _ = outcome_events(500, seed=47, invalid_rate=0.0, duplicate_rate=0.0)
    produce(kafka_bootstrap, topics.outcome_events, messages)
    settings = StreamsSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        streams_data_dir=tmp_path / "refused",
        streams_web_port=free_port(),
        streams_commit_interval_seconds=0.2,
    )
    worker = Worker(settings)
    finished = threading.Thread(target=worker.run, daemon=True)
    finished.start()
    finished.join(60)
    assert not finished.is_alive(), "the worker went on although its forwards were refused"
    # Without delivery reports the flush saw an empty queue and committed: 500 events lost.
    offsets = committed_offsets(kafka_bootstrap, settings.app_id, topics.outcome_events)
    assert all(offset < 0 for offset in offsets), offsets
    assert worker.fatal_error and worker.commits_refused


def test_poison_too_large_to_dead_letter_whole_and_unreadable_source_headers_do_not_stop_it(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    messages, truth = outcome_events(1_000, seed=53, invalid_rate=0.0, duplicate_rate=0.0)
    huge = b'{"model_type": "calling_score", "pad": "' + b" " * 3_000_000 + b'"}'
    # compressed, 3 MB of spaces get past the broker's 1 MB limit; uncompressed they cannot
    # be produced again, so the dead letter keeps the first part of the value only
    producer = make_producer(kafka_bootstrap, **{"message.max.bytes": 10_000_000})
    producer.produce(topics.outcome_events, huge, b"calling_score", partition=0)
    for partition in range(4):
        producer.produce(
            topics.training_samples,
            messages[0][1],
            b"calling_score",
            partition=partition,
            headers=[("source.partition", b"zero"), ("source.offset", b"-")],
        )
    assert producer.flush(30) == 0
    produce(kafka_bootstrap, topics.outcome_events, messages)
    (worker,) = _workers(kafka_bootstrap, topic_prefix, tmp_path, 1)
    try:
        worker.start().wait_web()
        wait_until(lambda: _all_counted(worker, truth), 90, "good events not all counted")
        _assert_tables_equal_truth(worker, truth)
        dead = read_topic(kafka_bootstrap, topics.outcome_events_dlq)
        assert len(dead) == 1
        headers = dict(dead[0].headers())
        assert headers["error.reason"] == b"too_large"
        assert headers["error.truncated_from"] == str(len(huge)).encode()
        assert dead[0].value() == huge[: len(dead[0].value())]
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()
