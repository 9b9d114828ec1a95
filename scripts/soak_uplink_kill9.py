#!/usr/bin/env python3
"""kill -9 the gateway again and again while safety events flow and the central broker is down;
then bring the broker up and check that every accepted event arrives and `seq` has no gap.

    .venv/bin/python scripts/soak_uplink_kill9.py --kills 50      # what the test suite runs
    .venv/bin/python scripts/soak_uplink_kill9.py --kills 1000    # a long run, by hand

Prints one JSON object: kills, accepted, received, lost, seq_gaps, duplicates, seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiomqtt
import yaml
from bench.common import free_port  # scripts/ is on sys.path
from bench.uplink_rig import start_broker, stop

REPO = Path(__file__).resolve().parents[1]
BASE = "campus/v1/soak/gw-soak"

# The child: the real gateway (edge.app.Gateway) plus a loop that records safety events and
# prints each one the store accepted. Printing happens after record_event returned, so a
# printed event is an accepted one; a kill between commit and print loses only the line.
CHILD = r"""
import asyncio, sys, time
from pathlib import Path
from edge.app import Gateway
from edge.config_loader import load_config
from edge.events import SafetyEvent, Severity

async def main(path, produce):
    gateway = Gateway(load_config(Path(path)))
    ready = asyncio.Event()
    task = asyncio.create_task(gateway.run(on_ready=lambda _: ready.set()))
    await ready.wait()
    print("READY", flush=True)
    n = 0
    while produce:
        n += 1
        env = await gateway.record_event(SafetyEvent(
            "door_forced", Severity.CRITICAL, time.time(), "device:door1", "r1", {"n": n}))
        print("ACCEPTED", env.event.event_id, env.seq, flush=True)
        await asyncio.sleep(0.005)
    await task

asyncio.run(main(sys.argv[1], sys.argv[2] == "produce"))
"""


def write_config(directory: Path, broker_port: int, local_port: int) -> Path:
    """A gateway with no devices, its local broker, and an uplink to broker_port."""
    config = {
        "site_id": "soak", "gateway_id": "gw-soak", "data_dir": str(directory / "data"),
        "log": {"level": "warning"},
        "mqtt": {"local": {"url": f"mqtt://127.0.0.1:{local_port}", "topic_prefix": "soak/local",
                           "reconnect": {"initial_s": 0.2, "max_s": 1.0}}},
        "rooms": [{"id": "r1"}], "console": {"enabled": False},
        "uplink": {"url": f"mqtt://127.0.0.1:{broker_port}", "keepalive_s": 5, "reconnect_initial_s": 0.2,
                   "reconnect_max_s": 0.5, "replay_rate": 5000, "inflight": 200},
    }
    path = directory / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_child(config: Path, produce: bool) -> subprocess.Popen[str]:
    """The gateway process; its stdout carries READY and ACCEPTED lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(config), "produce" if produce else "drain"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def kill_at_random(config: Path, rng: random.Random, accepted: dict[str, int]) -> None:
    """Start a producing gateway and SIGKILL it at a random moment (sometimes before it is ready)."""
    child = start_child(config, produce=True)
    assert child.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in child.stdout or []], daemon=True)
    reader.start()
    # One kill in five lands during start-up (migrations, opening the store); the rest while
    # events are being recorded.
    early = rng.random() < 0.2
    deadline = time.monotonic() + (rng.uniform(0.05, 1.0) if early else 30.0)
    while time.monotonic() < deadline and child.poll() is None:
        try:
            line = lines.get(timeout=0.01)
        except queue.Empty:
            continue
        if line.startswith("READY") and not early:
            deadline = min(deadline, time.monotonic() + rng.uniform(0.0, 0.5))
        _note(line, accepted)
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join(timeout=5)
    while not lines.empty():
        _note(lines.get(), accepted)


def _note(line: str, accepted: dict[str, int]) -> None:
    parts = line.split()
    if line.endswith("\n") and len(parts) == 3 and parts[0] == "ACCEPTED":  # a cut line is not counted
        accepted[parts[1]] = int(parts[2])


async def drain(config: Path, broker: tuple[str, int], accepted: dict[str, int],
                timeout_s: float) -> list[dict[str, Any]]:
    """Start a non-producing gateway with the broker up; collect events until all accepted arrived."""
    received: list[dict[str, Any]] = []
    async with aiomqtt.Client(*broker) as client:
        await client.subscribe(f"{BASE}/event", qos=1)
        child = start_child(config, produce=False)
        try:
            async with asyncio.timeout(timeout_s):
                want = set(accepted)
                async for message in client.messages if want else _nothing():
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    received.append(json.loads(payload))
                    want.discard(received[-1]["event_id"])
                    if not want:
                        break
        except TimeoutError:
            pass
        finally:
            stop(child)
    return received


async def _nothing() -> Any:
    """An empty async iterator."""
    return
    yield


def run(kills: int, seed: int) -> dict[str, Any]:
    """The whole scenario; the JSON figures."""
    began = time.monotonic()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="soak-uplink-") as tmp:
        directory = Path(tmp)
        local_port, central_port = free_port(), free_port()
        local = start_broker(directory, local_port)
        try:
            config = write_config(directory, central_port, local_port)
            accepted: dict[str, int] = {}
            for _ in range(kills):
                kill_at_random(config, rng, accepted)
            central = start_broker(directory, central_port)
            try:
                received = asyncio.run(drain(config, ("127.0.0.1", central_port), accepted, 120.0))
            finally:
                stop(central)
        finally:
            stop(local)
    ids = [r["event_id"] for r in received]
    seqs = {int(r["seq"]) for r in received}
    top = max(accepted.values(), default=0)
    gaps = [s for s in range(1, top + 1) if s not in seqs]
    return {"kills": kills, "accepted": len(accepted), "received": len(set(ids)),
            "lost": len(set(accepted) - set(ids)), "seq_gaps": len(gaps), "first_gaps": gaps[:10],
            "duplicates": len(ids) - len(set(ids)), "max_seq": top,
            "historical": sum(1 for r in received if r.get("historical")),
            "seconds": round(time.monotonic() - began, 1)}


def main() -> int:
    """Parse arguments, run, print the JSON object (exit 1 when anything accepted was lost)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = run(args.kills, args.seed)
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["seq_gaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
