"""A streams worker's /metrics, /livez and /readyz on a real broker: the counters it exports
agree with the topics and the tables it wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.topics import Topics
from streams.testing import MODEL_TYPES, outcome_events
from tests.streams.harness import StreamsWorker, get_json, produce, read_topic, wait_until

pytestmark = pytest.mark.integration

THRESHOLD = 300

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Series:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    answer = httpx.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def total(series: Series, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in series.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_the_exported_counters_agree_with_the_topics_and_the_tables(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    messages, truth = outcome_events(3000, seed=23)
    worker = StreamsWorker.alone(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        RELEARN_RETRAIN_SAMPLE_THRESHOLD=str(THRESHOLD),
    )
    try:
        worker.start()
        wait_until(
            lambda: status_of(f"{worker.url}/readyz") == 200,
            90,
            "the worker never became ready",
        )
        assert httpx.get(f"{worker.url}/livez", timeout=5).json() == {"status": "ok"}
        ready = httpx.get(f"{worker.url}/readyz", timeout=5).json()
        assert ready == {
            "ready": True,
            "checks": {"broker": "ok", "partitions": "ok", "tables": "ok"},
        }
        produce(kafka_bootstrap, topics.outcome_events, messages)

        def counted() -> bool:
            for model_type in MODEL_TYPES:
                view = get_json(f"{worker.url}/samples/{model_type}")
                if view is None:
                    return False
                if (
                    view["retrain_commands"] * THRESHOLD + view["new_samples"]
                    < truth.per_type[model_type]
                ):
                    return False
            return True

        wait_until(counted, 120, "events not all counted")
        forwarded = read_topic(kafka_bootstrap, topics.training_samples)
        commands = read_topic(kafka_bootstrap, topics.retrain_commands)
        dead = read_topic(kafka_bootstrap, topics.outcome_events_dlq)
        # one worker, no restart: every record was read once, every output sent once
        assert len({orjson.loads(m.value())["event_id"] for m in forwarded}) == len(forwarded)
        forwarded_by_type = Counter(orjson.loads(m.value())["model_type"] for m in forwarded)
        dead_by_reason = Counter(dict(m.headers())["error.reason"].decode() for m in dead)
        commands_by_type = Counter(orjson.loads(m.value())["model_type"] for m in commands)
        assert len(commands) == truth.retrain_commands(THRESHOLD) > 0

        def settled() -> Series | None:
            series = scrape(worker.url)
            lag = total(series, "relearn_streams_consumer_lag")
            consumed = total(series, "relearn_streams_events_consumed_total")
            return series if lag == 0 and consumed == len(messages) + len(forwarded) else None

        series = wait_until(settled, 30, "lag not 0 or records not all consumed")
        outcome, samples = topics.outcome_events, topics.training_samples
        assert total(series, "relearn_streams_events_consumed_total", topic=outcome) == len(
            messages
        )
        assert total(series, "relearn_streams_events_consumed_total", topic=samples) == len(
            forwarded
        )
        for model_type in MODEL_TYPES:
            assert (
                total(series, "relearn_streams_events_forwarded_total", model_type=model_type)
                == forwarded_by_type[model_type]
                == truth.per_type[model_type]
            )
            assert (
                total(series, "relearn_streams_retrain_commands_total", model_type=model_type)
                == commands_by_type[model_type]
            )
            assert (
                total(series, "relearn_streams_new_samples", model_type=model_type)
                == truth.per_type[model_type] % THRESHOLD
            )
            assert (
                total(
                    series, "relearn_streams_retrain_clock_timestamp_seconds", model_type=model_type
                )
                > 0
            )
        assert total(series, "relearn_streams_duplicates_dropped_total") == truth.duplicates > 0
        assert sum(dead_by_reason.values()) == truth.invalid > 0
        for reason, count in dead_by_reason.items():
            assert total(series, "relearn_streams_dead_letters_total", reason=reason) == count
        assert total(series, "relearn_streams_dead_letters_total") == truth.invalid
        assert total(
            series, "relearn_streams_retrain_commands_total", reason="sample_threshold"
        ) == len(commands)
        # every threshold command's delivery timed from its crossing sample's record time
        assert total(series, "relearn_streams_retrain_trigger_latency_seconds_count") == len(
            commands
        )
        assert (
            0
            < total(series, "relearn_streams_retrain_trigger_latency_seconds_sum")
            < 60 * len(commands)
        )
        assert total(series, "relearn_streams_batch_records_sum") == len(messages) + len(forwarded)
        assert total(series, "relearn_streams_batch_duration_seconds_count") >= 1
        assert total(series, "relearn_streams_commits_total") >= 1
        assert total(series, "relearn_streams_last_commit_timestamp_seconds") > 0
        assert total(series, "relearn_streams_commits_refused_total") == 0
        assert total(series, "relearn_streams_rebalances_total", status="assigned") >= 1
        partitions = total(series, "relearn_streams_partitions_assigned")
        assert partitions == total(series, "relearn_streams_restore_duration_seconds_count") > 0
        assert total(series, "relearn_streams_retrain_sample_threshold") == THRESHOLD
        assert total(series, "process_start_time_seconds") > 0
        # no label holds an id: every label value is from a bounded set
        bounded = set(MODEL_TYPES) | {outcome, samples} | set(dead_by_reason)
        for (_, labels), _value in series.items():
            for name, value in labels:
                if name in ("model_type", "topic"):
                    assert value in bounded | {"unknown"}, (name, value)
    finally:
        worker.stop()


def test_with_metrics_off_the_views_answer_and_metrics_do_not(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    worker = StreamsWorker.alone(
        kafka_bootstrap, topic_prefix, tmp_path, RELEARN_STREAMS_METRICS="false"
    )
    try:
        worker.start()
        worker.wait_web()
        assert httpx.get(f"{worker.url}/metrics", timeout=5).status_code == 404
        assert httpx.get(f"{worker.url}/livez", timeout=5).status_code == 200
        assert "/samples/{model_type}" in httpx.get(f"{worker.url}/openapi.json").json()["paths"]
    finally:
        worker.stop()
