"""What the web views read: every partition of the small tables, followed from their changelogs.

Any worker answers for all partitions because each one follows the whole changelog of the
rejection counts, the model-type state and the daily performance (a few keys per model type
and day), not only the partitions it owns. A model-type state is shown only once the daily
performance rows read so far hold every sample it counts (`processing.rows_cover_state`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from bus.tail import TopicTail
from streams import processing, rules, tables

log = logging.getLogger(__name__)

# States of one model type read ahead of their rows: past this many (rows that never come),
# the oldest are dropped; a newer state is shown once its rows are read.
MAX_HELD_BACK = 1_000


class TableViews:
    """table name -> {key: latest value shown}, across all partitions."""

    def __init__(self, bootstrap_servers: str, changelogs: dict[str, str]) -> None:
        self._table_of = {topic: name for name, topic in changelogs.items()}
        self.tables: dict[str, dict[str, Any]] = {name: {} for name in changelogs}
        # model type -> samples in its daily performance rows read so far
        self._rows_samples: dict[str, int] = defaultdict(int)
        # model type -> states read but not shown yet (their rows are not all read), oldest first
        self._held_back: dict[str, list[Any]] = {}
        self._tail: TopicTail[bytes] = TopicTail(
            bootstrap_servers, list(changelogs.values()), self.apply, "table-views"
        )

    @property
    def caught_up(self) -> bool:
        return self._tail.caught_up

    @property
    def held_back(self) -> list[str]:
        """Model types whose newest state read is not shown yet."""
        return sorted(self._held_back)

    def start(self) -> None:
        self._tail.start()

    def stop(self) -> None:
        self._tail.stop()

    def table(self, name: str) -> dict[str, Any]:
        return dict(self.tables[name])  # a copy: the tail thread keeps writing

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """One changelog record, as the tail reads it."""
        name = self._table_of[topic]
        key_text = (key or b"").decode()
        stored = None if value is None else tables.CODECS[name].decode(value)
        if name == tables.PERFORMANCE:
            self._apply_row(key_text, stored)
        elif name == tables.MODEL_TYPES:
            self._apply_state(key_text, stored)
        elif stored is None:
            self.tables[name].pop(key_text, None)
        else:
            self.tables[name][key_text] = stored

    def _apply_row(self, key: str, stored: Any) -> None:
        rows = self.tables[tables.PERFORMANCE]
        model_type = rules.performance_key_type(key)
        self._rows_samples[model_type] += processing.day_samples(stored) - processing.day_samples(
            rows.get(key)
        )
        if stored is None:
            rows.pop(key, None)
        else:
            rows[key] = stored
        self._show_covered(model_type)

    def _apply_state(self, model_type: str, stored: Any) -> None:
        if stored is None:
            self.tables[tables.MODEL_TYPES].pop(model_type, None)
            self._held_back.pop(model_type, None)
            return
        held = self._held_back.setdefault(model_type, [])
        held.append(stored)
        if len(held) > MAX_HELD_BACK:
            log.warning(
                "model_type=%s: %d states read ahead of their daily performance rows",
                model_type,
                len(held),
            )
            del held[0]
        self._show_covered(model_type)

    def _show_covered(self, model_type: str) -> None:
        """Show the newest held-back state of `model_type` that the rows read so far cover."""
        held = self._held_back.get(model_type)
        if not held:
            return
        rows_samples = self._rows_samples[model_type]
        for index in range(len(held) - 1, -1, -1):
            if processing.rows_cover_state(held[index], rows_samples):
                self.tables[tables.MODEL_TYPES][model_type] = held[index]
                del held[: index + 1]
                break
        if not held:
            del self._held_back[model_type]
