"""The peers' job (bench/peers) over plain dicts equals the generator's ground truth, and the
runner's check tells a table that does not."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from bench.peers.job import CATALOG, add_to_day, check_outcome, day_key, read_sample
from bench.peers.run import Tables, peer_tables, verdict
from contracts.validation import OutcomeRejected, validate_outcome
from streams import rules
from streams.testing import POISON, outcome_events


def _run_job(messages: list[tuple[bytes, bytes]]) -> tuple[dict[Any, Any], Counter[str], int]:
    """Both hops as a faust agent would run them, tables as dicts keyed like its changelog."""
    seen: set[str] = set()
    table: dict[Any, Any] = {}
    forwarded: Counter[str] = Counter()
    dead = 0
    for _key, raw in messages:
        checked = check_outcome(raw)
        if checked.reason:
            dead += 1
            continue
        if checked.event_id in seen:
            continue
        seen.add(checked.event_id)
        sample = read_sample(checked.forward)
        forwarded[sample["event_id"]] += 1
        table[sample["model_type"]] = table.get(sample["model_type"], 0) + 1
        table[day_key(sample)] = add_to_day(table.get(day_key(sample)), sample)
    return table, forwarded, dead


def test_job_equals_ground_truth_and_the_check_tells_a_double_count() -> None:
    messages, truth = outcome_events(3000, seed=11)
    table, forwarded, dead = _run_job(messages)
    assert dead == truth.invalid
    faust = peer_tables("faust", {orjson.dumps(k): v for k, v in table.items()})
    assert verdict(faust, forwarded, truth) == "exact"

    model_type = next(iter(truth.per_type))
    faust.per_type[model_type] += 1
    assert verdict(faust, forwarded, truth).startswith("counts +1")
    lost = Counter(dict(list(forwarded.items())[1:]))
    assert "1 ids never forwarded" in verdict(Tables(), lost, truth)
    twice = forwarded + Counter([next(iter(forwarded))])
    assert verdict(
        peer_tables("faust", {orjson.dumps(k): v for k, v in table.items()}), twice, truth
    ) == ("exact (1 re-forwarded)")


def test_quix_changelog_keys_are_read_per_message_key() -> None:
    messages, truth = outcome_events(500, seed=5)
    table, forwarded, _ = _run_job(messages)
    values = {}
    for key, value in table.items():
        if "|" in key:
            model_type = rules.split_performance_key(key)[0]
            values[orjson.dumps(model_type) + b"|" + orjson.dumps(key)] = value
        else:
            values[orjson.dumps(key) + b"|" + orjson.dumps("count")] = value
    assert verdict(peer_tables("quix", values), forwarded, truth) == "exact"


@pytest.mark.parametrize("raw", POISON)
def test_dead_letter_reason_is_the_contracts_own(raw: bytes) -> None:
    checked = check_outcome(raw)
    with pytest.raises(OutcomeRejected) as rejected:
        validate_outcome(raw, CATALOG, datetime.now(UTC))
    assert checked.reason == rejected.value.reason.value
    assert checked.raw == raw
    assert not checked.forward
