"""`edge demo --uplink`: the demo's status, events, telemetry and occupancy reach a central Mosquitto."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import edge_command, edge_env, start_mosquitto
from tests.gateway_harness import watching
from tests.uplink.schemas import validate

BASE = "campus/v1/demo-campus/gw-demo-101"


async def test_the_demo_forwards_everything_to_a_central_broker_and_every_message_is_valid(
        tmp_path: Path) -> None:
    central = start_mosquitto(tmp_path / "central")
    try:
        async with watching(central, f"{BASE}/#") as watcher:
            demo = await asyncio.create_subprocess_exec(
                *edge_command(), "demo", "--duration", "18", "--data-dir", str(tmp_path / "data"),
                "--http-port", "0", "--uplink", central.url, env=edge_env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(demo.communicate(), timeout=90)
            await asyncio.sleep(0.5)
        assert demo.returncode == 0, err.decode()[-2000:]
        summary = json.loads(out.decode().strip().splitlines()[-1])
        kinds: dict[str, int] = {}
        for topic, payload, _ in watcher.messages:
            kind = topic.removeprefix(BASE + "/")
            validate(kind, json.loads(payload))
            kinds[kind] = kinds.get(kind, 0) + 1
        assert {"status", "event", "telemetry", "occupancy"} <= set(kinds), kinds
        assert summary["events_uplinked"] > 0 and summary["events_uplinked"] <= kinds["event"]
        assert summary["errors"] == 0
        statuses = [json.loads(p) for t, p, _ in watcher.messages if t == f"{BASE}/status"]
        assert statuses[0]["state"] == "online" and statuses[-1]["state"] == "offline"  # clean stop
    finally:
        central.stop()
