"""The live alert stream over a real uvicorn socket: snapshot first, then transitions, keepalives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.console import ConsoleServer
from edge.console.server import ConsoleServerFailed
from tests.console.harness import login, press_panic, running_console


async def next_event(lines: AsyncIterator[str], timeout: float, comments: bool = False) -> tuple[str, Any]:
    """The next SSE message as (event name, parsed data); ("comment", text) for a comment if asked."""
    name, data = "", ""
    async with asyncio.timeout(timeout):
        async for line in lines:
            if line.startswith(":") and comments:
                return "comment", line[1:].strip()
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                return name, json.loads(data)
    raise AssertionError("stream ended")


async def test_stream_sends_open_alerts_then_each_transition_within_2s(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console:
        server = ConsoleServer(console.app, "127.0.0.1", 0)
        task = asyncio.create_task(server.run(lambda: None))
        try:
            async with asyncio.timeout(5):
                while server.bound_port is None:
                    await asyncio.sleep(0.02)
            base = f"http://127.0.0.1:{server.bound_port}"
            async with httpx.AsyncClient(base_url=base) as client:
                assert (await client.get("/api/stream")).status_code == 401
                csrf = await login(client, "sam")
                console.app.state.console.keepalive_s = 0.2  # keepalives now interleave with events
                alert_id = console.open_alert_id()
                async with client.stream("GET", "/api/stream", timeout=10) as stream:
                    assert stream.status_code == 200
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    lines = stream.aiter_lines()
                    name, alerts = await next_event(lines, 2)
                    assert name == "snapshot" and [a["alert_id"] for a in alerts] == [alert_id]
                    ack = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "going"},
                                            headers={"X-CSRF-Token": csrf})
                    assert ack.status_code == 200
                    name, data = await next_event(lines, 2)
                    assert name == "alert" and data["alert_id"] == alert_id
                    assert data["action"] == "acknowledged" and data["actor"] == "sam" and data["seq"] > 0
                    await press_panic(console.bus, "r2")  # a new alert raised by the rules
                    name, data = await next_event(lines, 2)
                    assert name == "alert" and data["action"] == "raised" and data["room_id"] == "r2"
                    assert await next_event(lines, 2, comments=True) == ("comment", "keepalive")
                    assert console.app.state.console.streams == 1
                async with asyncio.timeout(3):  # the client left: its subscription goes too
                    while console.app.state.console.streams:
                        await asyncio.sleep(0.02)
                names = [s["name"] for s in console.bus.stats()["subscribers"]]
                assert not [n for n in names if n.startswith("console-stream")]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_taken_port_fails_the_service_not_the_process(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console:
        first = ConsoleServer(console.app, "127.0.0.1", 0)
        task = asyncio.create_task(first.run(lambda: None))
        try:
            async with asyncio.timeout(5):
                while first.bound_port is None:
                    await asyncio.sleep(0.02)
            assert first.bound_port is not None
            with pytest.raises(ConsoleServerFailed):
                await ConsoleServer(console.app, "127.0.0.1", first.bound_port).run(lambda: None)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
