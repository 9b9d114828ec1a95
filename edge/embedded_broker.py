"""An in-process MQTT broker (amqtt) on loopback, so the demo needs nothing installed."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from amqtt.broker import Broker

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def port_is_free(host: str, port: int) -> bool:
    """Return True if a listening socket could bind host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Mirror asyncio's servers, which set SO_REUSEADDR: TIME_WAIT is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """Return a port the kernel says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Service: run amqtt on 127.0.0.1, on the wanted port or a free one if it is taken."""

    name = "embedded-broker"

    def __init__(self, preferred_port: int) -> None:
        self.preferred_port = preferred_port
        self.port: int | None = None
        # amqtt narrates every connection at INFO; the gateway logs what matters itself.
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve until cancelled."""
        port = self.preferred_port
        if port == 0 or not port_is_free(HOST, port):
            port = free_port()
            if self.preferred_port:
                log.warning("port %d is taken; the embedded broker uses %d instead",
                            self.preferred_port, port)
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        self.port = port
        log.info("embedded MQTT broker listening on mqtt://%s:%d", HOST, port)
        ready()
        try:
            await asyncio.Event().wait()
        finally:
            self.port = None
            try:
                async with asyncio.timeout(2.0):
                    await broker.shutdown()
            except TimeoutError:
                log.warning("embedded broker did not shut down within 2s")
