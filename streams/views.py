"""What the web views read: every partition of the small tables, followed from their changelogs.

Any worker answers for all partitions because each one follows the whole changelog of the
rejection counts, the model-type state and the daily performance (a few keys per model type
and day), not only the partitions it owns.
"""

from __future__ import annotations

from typing import Any

import orjson

from bus.tail import TopicTail


class TableViews:
    """table name -> {key: latest value}, across all partitions."""

    def __init__(self, bootstrap_servers: str, changelogs: dict[str, str]) -> None:
        self._table_of = {topic: name for name, topic in changelogs.items()}
        self.tables: dict[str, dict[str, Any]] = {name: {} for name in changelogs}
        self._tail = TopicTail(
            bootstrap_servers, list(changelogs.values()), self._apply, "table-views"
        )

    @property
    def caught_up(self) -> bool:
        return self._tail.caught_up

    def start(self) -> None:
        self._tail.start()

    def stop(self) -> None:
        self._tail.stop()

    def table(self, name: str) -> dict[str, Any]:
        return dict(self.tables[name])  # a copy: the tail thread keeps writing

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        table = self.tables[self._table_of[topic]]
        name = (key or b"").decode()
        if value is None:
            table.pop(name, None)
        else:
            table[name] = orjson.loads(value)
