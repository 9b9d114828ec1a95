"""The whole daemon as systemd runs it: notify, watchdog, SIGTERM, kill -9, bad data dir."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from edge.app import EXIT_RESTART_BUDGET, Gateway
from edge.config_loader import load_config
from edge.store import DB_FILENAME, Store
from edge.supervisor import Service
from tests.conftest import Mosquitto, edge_command, edge_env, write_config


def local_mqtt(mosquitto: Mosquitto) -> dict[str, object]:
    return {"local": {"url": mosquitto.url, "keepalive_s": 5,
                      "reconnect": {"initial_s": 0.2, "max_s": 1.0}}}


def notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(15)
    return sock


def receive_until(sock: socket.socket, wanted: str, timeout: float = 15.0) -> list[str]:
    """Read notify datagrams until one starts with wanted (watchdog pings keep coming)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(m.startswith(wanted) for m in seen):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted!r} within {timeout}s; got {sorted(set(seen))}")
        seen.append(sock.recv(4096).decode())
    return seen


async def collect(port: int, topic: str, until: Callable[[list[tuple[str, bytes]]], bool],
                  timeout: float = 15.0) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                got.append((message.topic.value, bytes(message.payload)))  # type: ignore[arg-type]
                if until(got):
                    return got
    return got


async def test_runs_under_notify_publishes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = write_config(tmp_path, gateway_id="gw-sigterm", mqtt=local_mqtt(mosquitto))
    sock = notify_socket(tmp_path)
    env = edge_env(NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="200000")
    log_path = tmp_path / "daemon.log"
    # A file, not a pipe: a pipe nobody reads until exit can fill and stall the daemon.
    with open(log_path, "w") as log_file:
        # `edge run` logs to stdout (the journal's stream); stderr joins it here.
        proc = subprocess.Popen([*edge_command(), "run", "--config", str(config)],
                                env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        seen = await asyncio.to_thread(receive_until, sock, "READY=1")
        # The link may connect before every service is ready: the status can come first.
        if not any(m.startswith("STATUS=local MQTT connected") for m in seen):
            await asyncio.to_thread(receive_until, sock, "STATUS=local MQTT connected")
        assert "WATCHDOG=1" in await asyncio.to_thread(receive_until, sock, "WATCHDOG=1")
        got = await collect(mosquitto.port, "edge/gw-sigterm/#",
                            lambda g: sum("/reading/" in t for t, _ in g) >= 3)
        status = dict(got)["edge/gw-sigterm/status"]
        assert json.loads(status)["state"] == "online"
        reading = next(json.loads(p) for t, p in got if t.startswith("edge/gw-sigterm/reading/sim1/"))
        assert reading["unit"] and reading["room_id"] == "r1"

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
        assert time.monotonic() - t0 < 5.0
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    stderr = log_path.read_text()
    assert "Traceback" not in stderr and " ERROR " not in stderr
    conn = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] > 0
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["gateway.start", "gateway.stop"]
    got = await collect(mosquitto.port, "edge/gw-sigterm/status", lambda g: True)
    assert json.loads(got[0][1])["state"] == "offline"


async def test_kill_9_leaves_the_will_saying_offline(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = write_config(tmp_path, gateway_id="gw-will", mqtt=local_mqtt(mosquitto))
    proc = subprocess.Popen([*edge_command(), "run", "--config", str(config)],
                            env=edge_env(), stderr=subprocess.DEVNULL)
    try:
        got = await collect(mosquitto.port, "edge/gw-will/status",
                            lambda g: json.loads(g[-1][1])["state"] == "online")
        assert json.loads(got[-1][1])["gateway_id"] == "gw-will"
    finally:
        proc.kill()
        proc.wait(10)
    got = await collect(mosquitto.port, "edge/gw-will/status",
                        lambda g: json.loads(g[-1][1])["state"] == "offline")
    assert json.loads(got[-1][1]) == {"state": "offline", "site_id": "test-site",
                                      "gateway_id": "gw-will"}


def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = write_config(tmp_path, data_dir=str(blocker / "data"))
    result = subprocess.run([*edge_command(), "run", "--config", str(config)],
                            env=edge_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"data dir {blocker / 'data'} is not usable" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_secret_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, mqtt={"local": {"url": "mqtt://127.0.0.1:1", "username": "u",
                                                    "password_env": "EDGE_TEST_UNSET_PW"}})
    result = subprocess.run([*edge_command(), "run", "--config", str(config)],
                            env=edge_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "EDGE_TEST_UNSET_PW is not set" in result.stderr


async def test_unreachable_broker_at_start_keeps_the_daemon_running(tmp_path: Path) -> None:
    from tests.conftest import free_port

    config = load_config(write_config(
        tmp_path, mqtt={"local": {"url": f"mqtt://127.0.0.1:{free_port()}",
                                  "reconnect": {"initial_s": 0.1, "max_s": 0.3}}}))
    gateway = Gateway(config)
    task = asyncio.create_task(gateway.run(stop_after=2.0))
    assert await asyncio.wait_for(task, 10) == 0
    assert gateway.link is not None and gateway.link.state == "disconnected"
    assert gateway.link.stats.connects == 0
    assert gateway.recorder is not None and gateway.recorder.recorded > 0


async def test_restart_budget_exhausted_exits_non_zero(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        async def run(self, ready: Callable[[], None]) -> None:
            raise OSError("device vanished")

    class GatewayWithBrokenService(Gateway):
        def build_services(self, store: Store) -> list[Service]:
            return [*super().build_services(store), Broken()]

    config = load_config(write_config(
        tmp_path, supervisor={"max_restarts": 2, "window_s": 60, "backoff_initial_s": 0.01,
                              "backoff_max_s": 0.02}))
    gateway = GatewayWithBrokenService(config)
    code = await asyncio.wait_for(gateway.run(), 15)
    assert code == EXIT_RESTART_BUDGET
    assert gateway.supervisor is not None
    assert gateway.supervisor.states["broken"].state == "failed"
    assert gateway.supervisor.states["recorder"].state == "stopped"
    conn = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("command", ["run", "check-config", "version", "demo", "simulate node"])
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run([*edge_command(), *command.split(), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "usage: edge" in result.stdout
