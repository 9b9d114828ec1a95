"""The console as a supervised gateway service: uvicorn serving the app inside the gateway's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from edge.errors import EdgeError

log = logging.getLogger(__name__)

STOP_GRACE_S = 3.0


class ConsoleServerFailed(EdgeError):
    """The console could not listen (port taken, bad address) or stopped on its own."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Leave signals alone."""
        yield


class ConsoleServer:
    """Service: serve the console app on host:port until cancelled."""

    name = "console"

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.bound_port: int | None = None  # the real port when port is 0 (tests)

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve; ready() once listening; raise ConsoleServerFailed if uvicorn cannot start."""
        config = uvicorn.Config(self.app, host=self.host, port=self.port, lifespan="off",
                                log_config=None, access_log=False, server_header=False,
                                # open SSE streams must not hold up a gateway shutdown
                                timeout_graceful_shutdown=int(STOP_GRACE_S))
        server = _EmbeddedServer(config)
        # Bound here, not by uvicorn: uvicorn sys.exit()s on a taken port, which would end the loop.
        try:
            sock = socket.create_server((self.host, self.port),
                                        family=socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        except OSError as exc:
            raise ConsoleServerFailed(f"console cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.bound_port = int(sock.getsockname()[1])
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    break
                await asyncio.sleep(0.05)
            if server.started:
                log.info("console listening on http://%s:%d", self.host, self.bound_port)
                ready()
                # shielded: cancelling this service must stop uvicorn gracefully, not kill it mid-response
                await asyncio.shield(task)
            raise ConsoleServerFailed(f"console on {self.host}:{self.port} stopped on its own")
        finally:
            server.should_exit = True
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_S + 2)
            if not done:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sock.close()

