"""Priority 7: a second streams worker started and stopped over and over while traffic flows
(CI 2 cycles of 6 s at 300 events/s, full 10 cycles of 20 s at 1,500/s): the tables stay exact, nobody crashes, and the group's
committed offsets keep advancing through every rebalance.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contracts.topics import Topics
from streams.testing import outcome_events
from tests.chaos.harness import ScenarioFigures, elapsed_since, record, size
from tests.chaos.test_streams_sigkill import counted_twice, produce_at_rate
from tests.streams.harness import committed_offsets, wait_until
from tests.streams.test_streams_on_broker import (
    _all_counted,
    _assert_outputs,
    _assert_tables_equal_truth,
    _workers,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(int(size(600, 3_600))),
]


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    return sum(max(offset, 0) for offset in committed_offsets(bootstrap, group, topic))


def test_second_worker_churn_keeps_tables_exact_and_offsets_advancing(
    kafka_bootstrap: str, topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    cycles = int(size(2, 10))
    period = float(size(6, 20))
    rate = float(size(300, 1_500))
    messages, truth = outcome_events(int(rate * cycles * (period + 4)), seed=43)
    steady, churner = _workers(kafka_bootstrap, topic_prefix, tmp_path, 2)
    group = f"{topic_prefix}relearn-streams"
    marks: list[int] = []
    try:
        steady.start().wait_web()
        producer = produce_at_rate(kafka_bootstrap, topics.outcome_events, messages, rate)
        for _ in range(cycles):
            churner.start()
            churner.wait_web()
            time.sleep(period / 2)
            churner.stop()
            time.sleep(period / 2)
            marks.append(committed_total(kafka_bootstrap, group, topics.outcome_events))
        producer.join()
        wait_until(lambda: _all_counted(steady, truth), 120, "events not all counted")
        doubled = counted_twice(steady, truth)
        record(
            ScenarioFigures(
                "7 rebalance churn (second worker)",
                len(messages),
                f"{cycles} x start + stop of a second worker",
                0,
                doubled,
                None,
                notes=f"committed offsets after each cycle {marks}",
                seconds=elapsed_since(began),
            )
        )
        assert steady.process is not None and steady.process.poll() is None, "steady worker died"
        assert all(b > a for a, b in zip(marks, marks[1:], strict=False)), (
            f"offsets stalled: {marks}"
        )
        _assert_tables_equal_truth(steady, truth)
        _assert_outputs(kafka_bootstrap, topics, truth)
    finally:
        steady.stop()
        churner.stop()
