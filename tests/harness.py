"""An app served for real: uvicorn in a daemon thread, on a 127.0.0.1 socket bound
before the thread starts, so the port is known at once and early connections simply
wait in the listen backlog. The one way tests run a gateway in-process."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn

from tests.eventually import eventually, eventually_async

__all__ = ["ServedApp"]


class ServedApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()

    def _started(self) -> bool:
        # the lifespan runs before uvicorn says it started
        assert self._thread.is_alive(), "the app failed to start; see its log"
        return bool(self._server.started)

    def wait_started(self, within_s: float = 15.0) -> None:
        eventually(self._started, "the app to start", within_s)

    async def started(self, within_s: float = 15.0) -> None:
        async def check() -> bool:
            return self._started()

        await eventually_async(check, "the app to start", within_s)

    def stop(self, within_s: float = 15.0) -> None:
        self._server.should_exit = True
        self._thread.join(within_s)
        self._sock.close()

    async def astop(self, within_s: float = 15.0) -> None:
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, within_s)
        self._sock.close()
