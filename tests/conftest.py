"""Shared fixtures: a real Mosquitto on a free port, config files, the edge CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that is free right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A running mosquitto process."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        terminate(self.proc)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process, SIGKILL it after 5 s, and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").exists():
        found = "/usr/sbin/mosquitto"  # Debian puts it in sbin, often not on a user's PATH
    if found is None:
        pytest.fail("mosquitto is not installed (scripts/test installs it as root)")
    return found


def start_mosquitto(directory: Path, port: int | None = None, extra: str = "") -> Mosquitto:
    """Start mosquitto on 127.0.0.1 (a free port unless given) with a config in directory.

    extra holds more listener settings; without it anonymous clients are allowed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = directory / f"mosquitto-{port}.conf"
    # As root, mosquitto drops to its own user, which cannot read pytest's 0700 temp
    # dirs (password files, certificates); a throwaway test broker may stay root.
    stay = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{stay}listener {port} 127.0.0.1\n{extra or 'allow_anonymous true'}\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
    )
    with open(directory / f"mosquitto-{port}.log", "wb") as log:
        proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=log)
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        proc.kill()
        raise
    return Mosquitto("127.0.0.1", port, proc)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A real Mosquitto broker for the whole test session."""
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


def write_config(directory: Path, **overrides: object) -> Path:
    """Write a small valid config into directory (keys in overrides replace top-level ones)."""
    config: dict[str, object] = {
        "site_id": "test-site",
        "gateway_id": "gw-test",
        "data_dir": str(directory / "data"),
        "log": {"level": "info"},
        "mqtt": {"local": {"url": "embedded", "embedded_port": 0,
                           "reconnect": {"initial_s": 0.2, "max_s": 1.0}}},
        "store": {"readings_flush_s": 0.2},
        "rooms": [{"id": "r1", "name": "Room 1"}],
        "devices": [{"id": "sim1", "type": "simulated", "room_id": "r1", "interval_s": 0.2}],
        # Tests that want the console turn it on with a free port; 8080 may be taken.
        "console": {"enabled": False},
    }
    config.update(overrides)
    path = directory / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def edge_command() -> list[str]:
    """The edge CLI of the environment running the tests."""
    return [sys.executable, "-m", "edge"]


def edge_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(extra)
    return env


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has really finished."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
