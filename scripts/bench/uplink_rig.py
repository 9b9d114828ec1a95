"""The uplink bench's parts: Mosquitto brokers (plain and bridging), gateway child processes,
subscribers that count or collect what reaches the central broker, backlog fillers, RSS."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import find_mosquitto, wait_for_port

REPO = Path(__file__).resolve().parents[2]
SITE, GATEWAY = "bench", "gw-bench"
EVENT_TOPIC = f"campus/v1/{SITE}/{GATEWAY}/event"
READY = "READY"
STAT = "STAT "


def mosquitto_binary() -> str:
    """Mosquitto's path; exit with a hint when it is not installed."""
    found = find_mosquitto()
    if found is None:
        raise SystemExit("mosquitto is not installed (scripts/test installs it as root)")
    return found


def start_broker(directory: Path, port: int, extra: str = "",
                 name: str | None = None) -> subprocess.Popen[bytes]:
    """A mosquitto on 127.0.0.1:port; extra adds config lines (persistence, a bridge)."""
    stay = "user root\n" if os.geteuid() == 0 else ""
    conf = directory / f"{name or f'mosquitto-{port}'}.conf"
    persistence = "" if "persistence true" in extra else "persistence false\n"
    conf.write_text(f"{stay}listener {port} 127.0.0.1\nallow_anonymous true\n{persistence}"
                    f"max_queued_messages 0\n{extra}")
    with open(directory / f"{conf.stem}.log", "ab") as log:
        proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=log)
    wait_for_port(port)
    return proc


def stop(proc: subprocess.Popen[Any], kill: bool = False) -> None:
    """Terminate (or SIGKILL) a child and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_config(directory: Path, name: str, local_port: int, central_port: int, replay_rate: float,
                 inflight: int = 100) -> Path:
    """A gateway without devices whose uplink goes to central_port; outbox caps above any backlog here."""
    config = {
        "site_id": SITE, "gateway_id": GATEWAY, "data_dir": str(directory / name),
        "log": {"level": "warning"},
        "mqtt": {"local": {"url": f"mqtt://127.0.0.1:{local_port}", "topic_prefix": "bench/local",
                           "reconnect": {"initial_s": 0.2, "max_s": 1.0}}},
        "rooms": [{"id": "r1"}], "console": {"enabled": False},
        "uplink": {"url": f"mqtt://127.0.0.1:{central_port}", "keepalive_s": 10, "reconnect_initial_s": 0.2,
                   "reconnect_max_s": 0.5, "replay_rate": replay_rate, "inflight": inflight,
                   "outbox": {"telemetry": {"max_rows": 2_000_000, "max_mb": 2048.0}}},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayChild:
    """The real gateway in a child process (bench_uplink.py --serve); it prints READY and STAT lines."""

    def __init__(self, script: Path, config: Path, produce: int = 0, producers: int = 1,
                 profile: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        command = [sys.executable, str(script), "--serve", str(config), "--produce", str(produce),
                   "--producers", str(producers)] + (["--profile", str(profile)] if profile else [])
        self.log_path = config.with_suffix(".log")
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                                         stderr=log)
        self.ready_at: float | None = None
        self.stat: dict[str, Any] = {"accepted": 0, "delivered": 0, "connected": False}
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(READY):
                self.ready_at = time.monotonic()
            elif line.startswith(STAT) and line.endswith("\n"):
                self.stat = json.loads(line[len(STAT):])

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Poll until predicate(self) holds; fail loudly if the child died or time ran out."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway child exited ({self.proc.returncode}) waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway child: no {what} after {timeout}s")
            time.sleep(0.02)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the gateway said ready."""
        self.wait(lambda g: g.ready_at is not None, timeout, "READY")

    def log_lines(self, containing: str) -> int:
        """Lines of the child's log (its stderr, all runs on this config) that contain a text."""
        return sum(1 for line in self.log_path.read_text(errors="replace").splitlines() if containing in line)

    def rss_mb(self) -> float:
        """The child's resident set size now."""
        return rss_mb(self.proc.pid)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean stop) or SIGKILL."""
        stop(self.proc, kill)


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Counter:
    """scripts/bench/mqtt_counter.py on the central broker: messages on a topic, and when they came."""

    def __init__(self, port: int, topic: str = EVENT_TOPIC) -> None:
        script = REPO / "scripts" / "bench" / "mqtt_counter.py"
        self.proc = subprocess.Popen([sys.executable, str(script), "127.0.0.1", str(port), topic],
                                     stdout=subprocess.PIPE, text=True)
        self.series: list[tuple[float, int]] = []  # (wall time, running total), every 0.2 s
        threading.Thread(target=self._read, daemon=True).start()
        while not self.series:  # subscribed once it reports
            time.sleep(0.01)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            if "count" in item:
                self.series.append((item["at"], item["count"]))

    @property
    def count(self) -> int:
        """Messages counted so far."""
        return self.series[-1][1] if self.series else 0

    def first_at(self, count: int) -> float | None:
        """The first report time at which the total had reached count."""
        return next((at for at, n in self.series if n >= count), None)

    def stop(self) -> None:
        """End the counter process."""
        stop(self.proc)


class Collector:
    """A paho subscriber keeping the event_id of every event message (for loss accounting)."""

    def __init__(self, port: int, client_id: str | None = None) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.ids: set[str] = set()
        self.messages = 0
        # With a client_id the session is persistent: the broker queues for it while it is away.
        self._client = paho.Client(CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"collector-{time.time_ns()}",
                                   clean_session=client_id is None)
        self._client.on_message = self._on_message
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(EVENT_TOPIC, qos=1)
        self._client.loop_start()
        subscribed.wait(5.0)  # the subscription is in place before anything is counted

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        body = json.loads(message.payload)
        if body.get("type") == "door_forced":
            self.messages += 1
            self.ids.add(body["event_id"])

    def settle(self, want: int, quiet_s: float, timeout: float) -> None:
        """Wait until want ids arrived, or nothing new came for quiet_s, or timeout."""
        deadline, last, last_change = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline and len(self.ids) < want:
            if len(self.ids) != last:
                last, last_change = len(self.ids), time.monotonic()
            elif time.monotonic() - last_change > quiet_s:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()
