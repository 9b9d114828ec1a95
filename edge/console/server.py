"""The console as a supervised gateway service: uvicorn serving the app inside the gateway's loop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Generator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from edge.console.routes_setup import offer_setup
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


def listen(host: str, port: int) -> socket.socket:
    """Bind the console's socket: '::' takes IPv4 too where the OS allows, '::1' stays IPv6-only."""
    if ":" not in host:
        sock = socket.create_server((host, port), family=socket.AF_INET)
    else:
        try:
            any_v6 = ipaddress.ip_address(host) == ipaddress.IPv6Address("::")
        except ValueError:
            any_v6 = False
        sock = socket.create_server((host, port), family=socket.AF_INET6,
                                    dualstack_ipv6=any_v6 and socket.has_dualstack_ipv6())
    # uvicorn writes headers and body separately; with Nagle on, a reused connection waits for
    # the client's delayed ACK (~40 ms) on every response. asyncio sets TCP_NODELAY only on
    # sockets it creates itself, and accepted sockets inherit it from the listener on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _check_readable(label: str, path: Path) -> None:
    # ssl's own error for a missing file names neither the file nor which of the two it was.
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConsoleServerFailed(f"console TLS {label} {path} cannot be read: {reason}") from exc


class ConsoleServer:
    """Service: serve the console app on host:port (HTTPS with a cert and key) until cancelled."""

    name = "console"

    def __init__(self, app: FastAPI, host: str, port: int, tls_cert_file: Path | None = None,
                 tls_key_file: Path | None = None) -> None:
        self.app = app
        # "[::1]" as written in a URL is the address "::1"
        self.host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        self.port = port
        self.tls_cert_file = tls_cert_file
        self.tls_key_file = tls_key_file
        self.bound_port: int | None = None  # the real port when port is 0 (tests)

    @property
    def url(self) -> str:
        """The console's address as a URL (IPv6 in brackets), with the bound port once listening."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls_cert_file is not None else "http"
        return f"{scheme}://{host}:{self.bound_port if self.bound_port is not None else self.port}/"

    def _config(self) -> uvicorn.Config:
        # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any loopback client
        # as the client address, and /metrics, throttling and the audit log rely on it.
        config = uvicorn.Config(self.app, host=self.host, port=self.port, lifespan="off",
                                log_config=None, access_log=False, server_header=False, proxy_headers=False,
                                ssl_certfile=self.tls_cert_file, ssl_keyfile=self.tls_key_file,
                                # open SSE streams must not hold up a gateway shutdown
                                timeout_graceful_shutdown=int(STOP_GRACE_S))
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            _check_readable("certificate", self.tls_cert_file)
            _check_readable("key", self.tls_key_file)
        # Loaded here (serve() would otherwise do it inside its task): a bad cert or key is
        # then a clear ConsoleServerFailed instead of a task that silently ends.
        try:
            config.load()
        except (ssl.SSLError, OSError) as exc:
            raise ConsoleServerFailed(f"console TLS certificate {self.tls_cert_file} or key "
                                      f"{self.tls_key_file} cannot be used: {exc}") from exc
        return config

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve; ready() once listening; raise ConsoleServerFailed if uvicorn cannot start."""
        server = _EmbeddedServer(self._config())
        # Bound here, not by uvicorn: uvicorn sys.exit()s on a taken port, which would end the loop.
        try:
            sock = listen(self.host, self.port)
        except OSError as exc:
            raise ConsoleServerFailed(f"console cannot listen on {self.url}: {exc}") from exc
        self.bound_port = int(sock.getsockname()[1])
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    break
                await asyncio.sleep(0.05)
            if server.started:
                log.info("console listening on %s", self.url)
                await offer_setup(self.app.state.console, self.url)
                ready()
                # shielded: cancelling this service must stop uvicorn gracefully, not kill it mid-response
                await asyncio.shield(task)
            raise ConsoleServerFailed(f"console on {self.url} stopped on its own")
        finally:
            server.should_exit = True
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_S + 2)
            if not done:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sock.close()
