"""Priority 7: a second streams worker started and stopped over and over while traffic flows
(CI 2 cycles of 6 s at 300 events/s, full 10 cycles of 20 s at 1,500/s): the tables stay exact, nobody crashes, and the group's
committed offsets keep advancing through every rebalance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts.topics import Topics
from streams.testing import outcome_events
from tests.chaos.harness import ScenarioFigures, elapsed_since, forwarded_ids, size
from tests.chaos.test_streams_sigkill import counted, counted_twice, produce_at_rate
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


@pytest.mark.scenario("7 rebalance churn (second worker)")
def test_second_worker_churn_keeps_tables_exact_and_offsets_advancing(
    kafka_bootstrap: str,
    topics: Topics,
    topic_prefix: str,
    tmp_path: Path,
    record_row: Callable[[ScenarioFigures], None],
) -> None:
    began = time.monotonic()
    cycles = int(size(2, 10))
    period = float(size(6, 20))
    rate = float(size(300, 1_500))
    messages, truth = outcome_events(int(rate * cycles * (period + 4)), seed=43)
    steady, churner = _workers(kafka_bootstrap, topic_prefix, tmp_path, 2)
    group = f"{topic_prefix}relearn-streams"
    marks: list[int] = []
    recoveries: list[float] = []
    try:
        steady.start().wait_web()
        producer = produce_at_rate(kafka_bootstrap, topics.outcome_events, messages, rate)
        for _ in range(cycles):
            churner.start()
            churner.wait_web()
            time.sleep(period / 2)
            before = counted(steady)
            churner.stop()
            stopped = time.monotonic()
            # recovered: the steady worker, alone again, counts beyond its count at the stop (or,
            # the producer done, has counted everything)
            wait_until(
                lambda b=before: (
                    counted(steady) > b or (not producer.is_alive() and _all_counted(steady, truth))
                ),
                60,
                "the steady worker made no progress after the second one left",
            )
            recoveries.append(elapsed_since(stopped))
            time.sleep(max(0.0, stopped + period / 2 - time.monotonic()))
            marks.append(committed_total(kafka_bootstrap, group, topics.outcome_events))
        producer.join()
        wait_until(lambda: _all_counted(steady, truth), 120, "events not all counted")
        assert steady.process is not None and steady.process.poll() is None, "steady worker died"
        assert all(b > a for a, b in zip(marks, marks[1:], strict=False)), (
            f"offsets stalled: {marks}"
        )
        assert counted_twice(steady, truth) == 0
        _assert_tables_equal_truth(steady, truth)
        _assert_outputs(kafka_bootstrap, topics, truth)
        ids = forwarded_ids(kafka_bootstrap, topics.training_samples, truth.valid_ids)
        assert (ids.lost, ids.duplicated, ids.unexpected) == (0, 0, 0), ids
        record_row(
            ScenarioFigures(
                len(messages),
                f"{cycles} x start + stop of a second worker",
                ids.lost,
                ids.duplicated,
                max(recoveries),
                notes=(
                    f"from each stop of the second worker to the steady one counting again "
                    f"{recoveries} s (about 0 where the producer had finished and everything was "
                    f"counted); committed offsets after each cycle {marks}; tables exact; "
                    f"training-samples re-sent {ids.resent}"
                ),
                seconds=elapsed_since(began),
            )
        )
    finally:
        steady.stop()
        churner.stop()
