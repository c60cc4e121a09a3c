"""A dead letter carries its record unchanged, unless the record is too large to send again."""

from __future__ import annotations

from confluent_kafka import Message

from bus.dead_letters import DETAIL_LIMIT, VALUE_LIMIT, dead_letter


def test_a_record_is_dead_lettered_unchanged_with_where_it_came_from() -> None:
    message = Message(topic="t.in", partition=3, offset=17, key=b"k", value=b"not json")
    value, headers = dead_letter(message, "invalid_json", "x" * (DETAIL_LIMIT + 10))
    assert value == b"not json"
    named = dict(headers)
    assert named["error.reason"] == b"invalid_json"
    assert len(named["error.detail"] or b"") == DETAIL_LIMIT
    assert (named["source.topic"], named["source.partition"], named["source.offset"]) == (
        b"t.in",
        b"3",
        b"17",
    )
    assert "error.truncated_from" not in named


def test_a_value_too_large_to_send_again_is_cut_and_says_how_long_it_was() -> None:
    huge = b"a" * (VALUE_LIMIT * 8)
    value, headers = dead_letter(Message(topic="t", partition=0, offset=0, value=huge), "x", "")
    assert value == huge[:VALUE_LIMIT]
    assert dict(headers)["error.truncated_from"] == str(len(huge)).encode()
