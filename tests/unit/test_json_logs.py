"""RELEARN_LOG_FORMAT=json: one JSON object per line with the ids at hand; text stays the default."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bus.logs import ContextIds, JsonFormatter, LogFormat, bind_log_ids, log_context
from bus.settings import LogSettings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("trainer"))
    handler.addFilter(ContextIds())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines_of(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_an_object_with_the_ids_of_its_context(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = captured
    log.info("outside")
    with log_context(model_type="calling_score"):
        bind_log_ids(command_id="c-1", version=None)
        log.warning("training %s", "now")
        log.info("published", extra={"event_id": "e-9", "command_id": "c-2"})
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
    log.info("after")

    outside, training, published, failed, after = lines_of(stream)
    assert set(outside) == {"time", "level", "service", "logger", "message"}
    assert outside["service"] == "trainer" and outside["logger"] == "tests.json_logs"
    assert outside["time"].endswith("+00:00") and outside["level"] == "INFO"
    assert training["message"] == "training now" and training["level"] == "WARNING"
    assert (training["model_type"], training["command_id"]) == ("calling_score", "c-1")
    assert "version" not in training  # None is not an id
    # `extra=` wins over the context
    assert (published["event_id"], published["command_id"]) == ("e-9", "c-2")
    assert "ValueError: bad" in failed["error"] and failed["model_type"] == "calling_score"
    assert "model_type" not in after and "command_id" not in after  # the context ended


def test_the_format_is_text_unless_the_setting_says_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELEARN_LOG_FORMAT", raising=False)
    assert LogSettings().log_format is LogFormat.TEXT
    monkeypatch.setenv("RELEARN_LOG_FORMAT", "json")
    assert LogSettings().log_format is LogFormat.JSON
    monkeypatch.setenv("RELEARN_LOG_FORMAT", "xml")
    with pytest.raises(ValueError):
        LogSettings()


def test_relearn_registry_writes_json_lines(tmp_path: Path) -> None:
    """The entry point wires the setting: every line the registry logs on stderr parses."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEARN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        RELEARN_LOG_FORMAT="json",
        RELEARN_STATE_DIR=str(tmp_path),
        RELEARN_REGISTRY_KAFKA_ENABLED="false",
        RELEARN_REGISTRY_PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "relearn.cli", "registry"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines, err
    assert {line["service"] for line in lines} == {"registry"}
    assert any(line["message"].startswith("registry ready") for line in lines), err
