"""The tables' typed values read and write the changelog layout every release so far has written."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams import tables, values
from streams.rules import DailyPerformance
from streams.values import DayPerformance, FirstSeen, RejectionCount

# Records as the release before typed values wrote them (orjson of its dicts, b"p:o").
OLD_DAY = b'{"p":[3,2,1.25,1.5],"applied":{"o0":41,"o2":7}}'
OLD_REJECTION = b'{"count":2,"offset":9}'
OLD_FIRST_SEEN = b"3:17"


def test_old_records_read_back_as_typed_values_and_write_the_same_bytes() -> None:
    day = values.DAY_PERFORMANCE.decode(OLD_DAY)
    assert day == DayPerformance(DailyPerformance(3, 2, 1.25, 1.5), {"o0": 41, "o2": 7})
    assert values.DAY_PERFORMANCE.encode(day) == OLD_DAY
    rejection = values.REJECTION_COUNT.decode(OLD_REJECTION)
    assert rejection == RejectionCount(2, 9)
    assert values.REJECTION_COUNT.encode(rejection) == OLD_REJECTION
    assert values.FIRST_SEEN.decode(OLD_FIRST_SEEN) == FirstSeen(3, 17)
    assert values.FIRST_SEEN.encode(FirstSeen(3, 17)) == OLD_FIRST_SEEN


def test_a_day_written_before_any_sample_was_applied_reads_back() -> None:
    assert values.DAY_PERFORMANCE.decode(b'{"p":[0,0,0.0,0.0],"applied":{}}') == DayPerformance()


counts = st.integers(min_value=0, max_value=2**53)
sums = st.floats(allow_nan=False, allow_infinity=False)
applied = st.dictionaries(st.from_regex(r"o[0-9]{1,3}", fullmatch=True), counts, max_size=4)


@given(counts, counts, sums, sums, applied)
def test_a_day_encodes_as_the_previous_release_did_and_decodes_to_itself(
    n: int, positives: int, prediction_sum: float, score_sum: float, applied: dict[str, int]
) -> None:
    day = DayPerformance(DailyPerformance(n, positives, prediction_sum, score_sum), applied)
    # what the previous release's handle_sample stored, serialized by its changelog writer
    old = orjson.dumps({"p": [n, positives, prediction_sum, score_sum], "applied": applied})
    assert values.DAY_PERFORMANCE.encode(day) == old
    assert values.DAY_PERFORMANCE.decode(old) == day


@given(counts, st.integers(min_value=-1, max_value=2**53))
def test_a_rejection_count_round_trips_in_the_old_layout(count: int, offset: int) -> None:
    value = RejectionCount(count, offset)
    old = orjson.dumps({"count": count, "offset": offset})
    assert values.REJECTION_COUNT.encode(value) == old
    assert values.REJECTION_COUNT.decode(old) == value


@given(st.integers(min_value=0, max_value=2**31), st.integers(min_value=0, max_value=2**62))
def test_a_first_sighting_round_trips(partition: int, offset: int) -> None:
    raw = values.FIRST_SEEN.encode(FirstSeen(partition, offset))
    assert raw == f"{partition}:{offset}".encode()
    assert values.FIRST_SEEN.decode(raw) == FirstSeen(partition, offset)


def test_a_rejection_is_counted_once_per_offset() -> None:
    counted = RejectionCount().counted(5)
    assert counted == RejectionCount(1, 5)
    assert counted.counted(5) is counted and counted.counted(4) is counted
    assert counted.counted(6) == RejectionCount(2, 6)


def test_each_small_table_restores_its_own_typed_values() -> None:
    performance = tables.ChangelogTable.of(tables.PERFORMANCE)
    performance.restore(b"calling_score|2026-12-01|v1.0", OLD_DAY)
    rejections = tables.ChangelogTable.of(tables.REJECTIONS)
    rejections.restore(b"schema@0", OLD_REJECTION)
    assert performance["calling_score|2026-12-01|v1.0"].sums.sample_count == 3
    assert rejections["schema@0"] == RejectionCount(2, 9)
    assert not performance.changed and not rejections.changed  # a restore is no change
    performance["calling_score|2026-12-01|v1.0"] = performance["calling_score|2026-12-01|v1.0"]
    assert list(performance.take_changed()) == [(b"calling_score|2026-12-01|v1.0", OLD_DAY)]
