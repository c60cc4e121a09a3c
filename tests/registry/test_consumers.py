"""Decoding input records: what is poison (dead-lettered) and why, without a broker."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from contracts.events import RegistryCommandIssued, RegistryCommandType, to_json
from registry.consumers import Poison, _decode, handle_model_deployed, handle_registry_command
from registry.errors import StoreConflict, Unstorable
from registry.metrics import RegistryMetrics
from tests.registry.conftest import make_deployment


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


@pytest.mark.parametrize("handle", [handle_model_deployed, handle_registry_command])
def test_a_store_conflict_is_retried_not_dead_lettered(handle: Any, tmp_path: Path) -> None:
    """Concurrent writers that won 200 times in a row used to turn a valid record into poison:
    dead-lettered, so the version was never registered. It is transient: raised for a retry."""

    def failing_with(error: Exception) -> Any:
        def fail(*_args: object) -> None:
            raise error

        return SimpleNamespace(
            register_deployment=fail, handle_command=fail, metrics=RegistryMetrics()
        )

    raw = (
        to_json(make_deployment(tmp_path))
        if handle is handle_model_deployed
        else command(command_id="c1")
    )
    with pytest.raises(StoreConflict):
        handle(failing_with(StoreConflict("calling_score changed concurrently")), raw)
    with pytest.raises(Poison) as caught:
        handle(failing_with(Unstorable("the database refuses this record")), raw)
    assert caught.value.reason == "unstorable"
