"""Alert bench rig: a Mosquitto, the bench config, the gateway in a child process, an MQTT watcher."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import find_mosquitto, free_port, wait_for_port
from edge.store import DB_FILENAME
from edge.store.database import Database
from edge.users import Role, hash_password

PREFIX = "bench"
USER = "guard"
PASSWORD = "bench horse battery staple"
READY_PREFIX = "BENCH-READY "
ROOM = "r1"
CAMERA = "cam1"
ZONE = "floor"
NODE = "node1"
# Not 0: with clear_after_s 0 the intrusion rule clears while the person is still there (an
# occupied zone counts as "empty for 0 s"), and the alert flaps raised/resolved in a loop.
CLEAR_AFTER_S = 0.5


def start_mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway Mosquitto on a free port."""
    binary = find_mosquitto()
    assert binary is not None
    port = free_port()
    conf = directory / "mosquitto.conf"
    stay = "user root\n" if os.geteuid() == 0 else ""
    # set_tcp_nodelay: with Nagle on, a small message to a subscriber can wait ~40 ms for the
    # previous one's delayed ACK: the broker's setting, not the gateway's latency.
    conf.write_text(f"{stay}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type error\nset_tcp_nodelay true\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc, port


def write_config(directory: Path, mqtt_url: str, embedded_port: int, pty_path: str, camera_url: str | None,
                 detect_fps: float) -> Path:
    """The gateway config: one room with an empty timetable, a node, optionally a camera, the console."""
    config: dict[str, Any] = {
        "site_id": "bench", "gateway_id": "gw-bench", "data_dir": str(directory / "data"),
        "log": {"level": "warning"},
        "mqtt": {"local": {"url": mqtt_url, "embedded_port": embedded_port, "topic_prefix": PREFIX,
                           "reconnect": {"initial_s": 0.2, "max_s": 1.0}, "discovery": {"enabled": False}}},
        # No periods: nobody is ever expected, so any person in a zone is an intrusion.
        "rooms": [{"id": ROOM, "name": "Bench room", "schedule": {"timezone": "UTC", "periods": []}}],
        "devices": [{"id": NODE, "type": "node", "room_id": ROOM, "port": pty_path}],
        "alerts": {"rules": {"intrusion": {"grace_s": 0, "clear_after_s": CLEAR_AFTER_S}}},
        "console": {"enabled": True, "host": "127.0.0.1", "port": 0},
    }
    if camera_url is not None:
        config["cameras"] = [{
            "id": CAMERA, "room_id": ROOM, "url": camera_url, "detect_fps": detect_fps,
            "zones": [{"id": ZONE, "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "anchor": "center"}],
            # Switching between two stills is what a tamper check calls "turned away".
            "tamper": {"enabled": False},
        }]
    path = directory / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (directory / "data").mkdir(exist_ok=True)
    db = Database(directory / "data" / DB_FILENAME)
    try:
        db.add_user(USER, Role.SECURITY, hash_password(PASSWORD), time.time(), "bench")
        # Without an admin the console offers its one-time setup page instead of the login.
        db.add_user("admin", Role.ADMIN, hash_password(secrets.token_urlsafe(16)), time.time(), "bench")
    finally:
        db.close()
    return path


class GatewayProcess:
    """The gateway (edge.app.Gateway) in a child process of this script; knows the console port."""

    def __init__(self, script: Path, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(script), "--serve", str(config)],
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.console_port = 0

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait for the child's ready line (models loaded, console listening, broker connected)."""
        stdout = self.proc.stdout
        assert stdout is not None
        found: list[str] = []
        # readline() has no timeout: a thread reads, this one waits at most timeout seconds.
        reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not found or not found[0].startswith(READY_PREFIX):
            self.stop()
            tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
            raise SystemExit("the gateway did not start:\n" + "\n".join(tail))
        self.console_port = int(json.loads(found[0][len(READY_PREFIX):])["console_port"])

    def stop(self) -> None:
        """SIGTERM (a clean stop), then kill if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Seen:
    """One message on the local broker, stamped on arrival."""

    at: float
    topic: str
    body: dict[str, Any]


@dataclass
class Watcher:
    """A paho subscriber on its own thread: every event and presence message, with arrival time."""

    port: int
    messages: list[Seen] = field(default_factory=list)

    def start(self) -> None:
        """Connect, subscribe, and wait until the subscription is granted."""
        self._subscribed = threading.Event()
        client = self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
        client.on_connect = lambda c, *_: c.subscribe([(f"{PREFIX}/event", 1),
                                                       (f"{PREFIX}/camera/+/zone/+/presence", 1)])
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        if not self._subscribed.wait(10):
            raise SystemExit("the bench's MQTT subscriber could not subscribe")

    def _on_message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        at = time.time()  # first thing: the arrival time is what is measured
        with contextlib.suppress(ValueError):
            self.messages.append(Seen(at, message.topic, json.loads(message.payload)))

    def stop(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()

    def find(self, after: int, predicate: Any) -> Seen | None:
        """The first message from index `after` on that satisfies predicate."""
        for seen in self.messages[after:]:
            if predicate(seen):
                return seen
        return None

    def alert(self, after: int, action: str, kind: str | None = None,
              alert_id: str | None = None) -> Seen | None:
        """The first alert transition with this action (and kind or id) from index `after` on."""
        def match(seen: Seen) -> bool:
            data = seen.body.get("data") or {}
            return (seen.topic.endswith("/event") and seen.body.get("type") == "alert"
                    and data.get("action") == action and (kind is None or data.get("kind") == kind)
                    and (alert_id is None or data.get("alert_id") == alert_id))
        return self.find(after, match)
