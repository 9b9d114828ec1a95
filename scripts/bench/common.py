"""Helpers every bench script shares: free ports, waiting for a listener, Mosquitto, /proc CPU time."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def find_mosquitto() -> str | None:
    """Mosquitto's path (Debian puts it in /usr/sbin, often not on PATH), or None."""
    sbin = Path("/usr/sbin/mosquitto")
    return shutil.which("mosquitto") or (str(sbin) if sbin.exists() else None)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
