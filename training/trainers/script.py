"""The `script` trainer kind: the operator's argv template run as a child process, never a shell."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from contracts.trainer_config import ARGV_PLACEHOLDERS, ScriptTrainer
from training.errors import RejectionReason, TrainerRejectedError

log = logging.getLogger(__name__)

TAIL_LINES = 40
STDOUT_LINES_KEPT = 10_000
TAIL_CHARS = 4_000  # the rejection event stays well under the broker's message size
KILL_GRACE_SECONDS = 2.0  # after SIGTERM to the group, SIGKILL

# (stream name, line) for each line the script prints; it may raise to stop the run.
LineCallback = Callable[[str, str], None]
# Called a few times a second while the script runs; it may raise to stop the run.
TickCallback = Callable[[], None]
# Output pipes still open this long after the script exited belong to a child left behind.
PIPE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class ScriptRun:
    argv: list[str]
    returncode: int
    stdout: list[str]  # every line, for the metric parser
    stderr_tail: str
    seconds: float


def expand(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Substitute the known placeholders only: plain replacement, no format mini-language."""
    expanded = []
    for part in argv:
        for placeholder, value in values.items():
            part = part.replace(placeholder, value)
        expanded.append(part)
    return expanded


def script_file(config: ScriptTrainer) -> Path | None:
    """The file the argv runs: the first literal argument (no placeholder) naming a file."""
    for part in config.argv:
        if any(placeholder in part for placeholder in ARGV_PLACEHOLDERS):
            continue  # the interpreter, the data, the output: not the team's code
        path = Path(part)
        candidate = path if path.is_absolute() else (config.workdir or Path.cwd()) / path
        try:
            if candidate.is_file() and os.access(candidate, os.R_OK):
                return candidate.resolve()
        except OSError:  # an argument that cannot be a path (`-c` code: too long a name)
            continue
    return None


def tail(lines: deque[str] | list[str]) -> str:
    text = "\n".join(list(lines)[-TAIL_LINES:])
    return text[-TAIL_CHARS:]


def _pump(name: str, stream: IO[str], lines: queue.Queue[tuple[str, str | None]]) -> None:
    try:
        for line in stream:
            lines.put((name, line.rstrip("\r\n")))
    finally:
        lines.put((name, None))


def _kill_group(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the script's whole process group, SIGKILL after a grace: nothing stays behind."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if sig is signal.SIGTERM:
            try:
                process.wait(KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; its children may not be: the SIGKILL below takes them too


def run_script(  # noqa: C901 - one child process's whole life (spawn, feed, time out, reap) in one place
    config: ScriptTrainer,
    argv: list[str],
    on_line: LineCallback | None = None,
    on_tick: TickCallback | None = None,
    extra_env: dict[str, str] | None = None,
) -> ScriptRun:
    """Run to completion within the timeout; raises TrainerRejectedError on failure or timeout."""
    env = dict(os.environ)
    env.update(config.env)
    env.update(extra_env or {})
    env.setdefault("PYTHONUNBUFFERED", "1")  # lines reach the log as they are printed
    started = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: S603 - a list from the operator's file, no shell
            argv,
            cwd=config.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group, so a timeout can kill all of it
        )
    except OSError as exc:
        raise TrainerRejectedError(
            f"could not start {argv[0]!r} in {config.workdir}: {exc}",
            reason=RejectionReason.TRAINER_FAILED,
            context={"argv": argv},
        ) from exc
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    assert process.stdout is not None and process.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(name, stream, lines), daemon=True)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for pump in pumps:
        pump.start()
    # The metric lines come last; a chatty script's earlier output need not stay in memory.
    stdout: deque[str] = deque(maxlen=STDOUT_LINES_KEPT)
    stderr: deque[str] = deque(maxlen=TAIL_LINES)
    open_streams = 2
    deadline = started + config.timeout_seconds
    timed_out = False
    exited_at: float | None = None
    try:
        while open_streams or process.poll() is None:
            now = time.monotonic()
            if now > deadline:
                timed_out = True
                break
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > PIPE_GRACE_SECONDS:
                break
            if on_tick is not None:
                on_tick()
            try:
                name, line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            (stdout if name == "stdout" else stderr).append(line)
            log.info("trainer %s: %s", name, line)
            if on_line is not None:
                on_line(name, line)
    finally:
        # Whatever ended the wait (exit, timeout, a cancel raised by on_line), the group goes.
        _kill_group(process)
        process.wait()
        for pump in pumps:
            pump.join(5)
    seconds = time.monotonic() - started
    while not lines.empty():  # what the pumps read after the loop stopped
        name, line = lines.get_nowait()
        if line is not None:
            (stdout if name == "stdout" else stderr).append(line)
    context: dict[str, Any] = {"argv": argv, "stderr_tail": tail(stderr) or tail(stdout)}
    if timed_out:
        raise TrainerRejectedError(
            f"the trainer ran longer than {config.timeout_seconds:g} s; its process group was killed",
            reason=RejectionReason.TRAINER_TIMEOUT,
            context=context,
        )
    if process.returncode != 0:
        raise TrainerRejectedError(
            f"the trainer exited with status {process.returncode}",
            reason=RejectionReason.TRAINER_FAILED,
            context=context,
        )
    return ScriptRun(argv, process.returncode, list(stdout), tail(stderr), seconds)
