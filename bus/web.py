"""A service's small web port: uvicorn on a daemon thread beside the service's own loop."""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class WebServer:
    """uvicorn on a daemon thread; the port is bound in `start`, so a taken port fails loudly."""

    def __init__(self, app: FastAPI, host: str, port: int, name: str, routes: str) -> None:
        self.host = host
        self.port = port
        self._name = name  # the service, in the thread's name and the start-up log line
        self._routes = routes  # what the port serves, for that line
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._thread: threading.Thread | None = None

    def start(self) -> WebServer:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"{self._name}-web",
            daemon=True,
        )
        self._thread.start()
        log.info("%s web on http://%s:%d (%s)", self._name, self.host, self.port, self._routes)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
