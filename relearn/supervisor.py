"""Runs relearn's services as child processes, prefixes their output, and stops them all cleanly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


@dataclass
class ServiceSpec:
    """One process to supervise: a name, its argv, extra environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM us when the supervisor dies, so no service is orphaned."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the supervisor's own stop() still ends its children
        pass


def relearn_argv(*args: str) -> list[str]:
    """argv that runs the relearn CLI with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "relearn.cli", *args]


class Supervisor:
    """Starts services, streams their output to a sink line by line, stops them on exit."""

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        base_env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        echo: Callable[[str, str], None] | None = None,
    ) -> None:
        self._specs = list(services)
        self._base_env = dict(base_env if base_env is not None else os.environ)
        self._log_dir = log_dir
        self._echo = echo
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._log_dir:
            self._log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self._specs:
            self.start_one(spec)

    def start_one(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        env = {**self._base_env, **spec.env}
        process = subprocess.Popen(
            list(spec.argv),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            preexec_fn=_die_with_parent,
        )
        self.processes[spec.name] = process
        log_file = (self._log_dir / f"{spec.name}.log").open("ab") if self._log_dir else None
        thread = threading.Thread(
            target=self._pump, args=(spec.name, process.stdout, log_file), daemon=True
        )
        thread.start()
        self._threads.append(thread)
        log.info("started %s (pid %d): %s", spec.name, process.pid, " ".join(spec.argv))
        return process

    def _pump(self, name: str, stream: IO[bytes] | None, log_file: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            if log_file:
                log_file.write(raw)
                log_file.flush()
            if self._echo:
                self._echo(name, raw.decode(errors="replace").rstrip())
        if log_file:
            log_file.close()

    def exited(self) -> dict[str, int]:
        """Services that have stopped, with their exit codes."""
        return {name: code for name, p in self.processes.items() if (code := p.poll()) is not None}

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every child (its whole process group), SIGKILL what is left after `grace`."""
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
