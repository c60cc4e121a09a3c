"""Decoding input records: what is poison (dead-lettered) and why, without a broker."""

from __future__ import annotations

import pytest

from contracts.events import RegistryCommandIssued, RegistryCommandType, to_json
from registry.consumers import Poison, _decode


def command(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "type": RegistryCommandType.ROLLBACK,
        "model_type": "m",
        "version": "v1.0",
        **overrides,
    }
    # built without validation: the poison cases are records no valid model would make
    return to_json(RegistryCommandIssued.model_construct(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw, reason",
    [
        (None, "empty"),
        (b"x" * (2 << 20), "too_large"),
        (b"{nope", "invalid_json"),
        (b'{"type": "explode", "model_type": "m"}', "schema"),
        (command(command_id="c" * 65), "schema"),
        (command(model_type="calling\x00score"), "schema"),
        (command(model_type=""), "schema"),
    ],
)
def test_poison_records_and_their_reasons(raw: bytes | None, reason: str) -> None:
    with pytest.raises(Poison) as caught:
        _decode(RegistryCommandIssued, raw)
    assert caught.value.reason == reason


def test_unknown_fields_are_ignored_on_internal_topics() -> None:
    raw = command()[:-1] + b', "added_later": 1}'
    assert _decode(RegistryCommandIssued, raw).version == "v1.0"
