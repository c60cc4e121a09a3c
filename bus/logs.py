"""Every service's log lines: text by default, one JSON object per line for a log pipeline.

The ids an operator joins the loop's steps by (model_type, command_id, version, event_id) come
from a log call's `extra=` or from `log_context`/`bind_log_ids`, which hold them for the rest of
the unit of work on this thread (a command being trained, a record being handled).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum

LOG_IDS = ("model_type", "command_id", "version", "event_id")

_ids: ContextVar[dict[str, str]] = ContextVar("relearn_log_ids", default={})  # noqa: B039 - never mutated, only replaced


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Ids for every log line inside the block (and those bound in it), dropped after it."""
    token = _ids.set({**_ids.get(), **_present(ids)})
    try:
        yield
    finally:
        _ids.reset(token)


def bind_log_ids(**ids: str | None) -> None:
    """Add ids to the current context, e.g. once a record is parsed inside `log_context`."""
    _ids.set({**_ids.get(), **_present(ids)})


def _present(ids: dict[str, str | None]) -> dict[str, str]:
    return {name: str(value) for name, value in ids.items() if value is not None}


class ContextIds(logging.Filter):
    """Puts the context's ids on each record, unless the call's `extra=` set them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _ids.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, service, logger, message, the ids at hand, and the error."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in LOG_IDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, service: str, log_format: LogFormat = LogFormat.TEXT) -> None:
    """The process's one logging setup (called by the entry point), to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(service))
        handler.addFilter(ContextIds())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
