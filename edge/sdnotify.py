"""The systemd notify protocol over its datagram socket (no systemd library needed)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notify message (e.g. 'READY=1'); False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as err:
        log.warning("sd_notify to %s failed: %s", address, err)
        return False
    return True


def watchdog_interval() -> float | None:
    """Return how often to ping the watchdog (half of WATCHDOG_USEC), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 1_000_000 / 2)
    except ValueError:
        log.warning("ignoring bad WATCHDOG_USEC=%r", usec)
        return None


class WatchdogPinger:
    """A service that sends WATCHDOG=1 while the event loop is alive."""

    name = "watchdog"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s

    async def run(self, ready: Callable[[], None]) -> None:
        """Ping until cancelled."""
        ready()
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(self.interval_s)
