"""Run a whole Gateway in-process against a real broker, and talk to it as an MQTT client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt

from edge.app import Gateway
from edge.config_loader import load_config
from tests.conftest import Mosquitto, write_config


def gateway_config_path(tmp_path: Path, broker: Mosquitto, devices: list[dict[str, Any]],
                        local: dict[str, Any] | None = None, **overrides: object) -> Path:
    """Write a config for a gateway on the test broker with the given devices."""
    mqtt = {"local": {"url": broker.url, "client_id": f"edge-{tmp_path.name}"[:60],
                      "topic_prefix": f"t/{tmp_path.name}",
                      "reconnect": {"initial_s": 0.2, "max_s": 1.0}, **(local or {})}}
    return write_config(tmp_path, mqtt=mqtt, devices=devices, **overrides)


@asynccontextmanager
async def running_gateway(config_path: Path, connected: bool = True) -> AsyncIterator[Gateway]:
    """Start a Gateway, wait until it is ready (and connected), stop it cleanly on exit."""
    gateway = Gateway(load_config(config_path))
    ready = asyncio.Event()
    task = asyncio.create_task(gateway.run(on_ready=lambda _: ready.set()))
    done, _ = await asyncio.wait([task, asyncio.create_task(ready.wait())], timeout=15,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        raise RuntimeError(f"gateway exited early with {task.result()}")
    # Ready is not connected: wait until the link has subscribed, so what a test
    # publishes next reaches the gateway.
    async with asyncio.timeout(10):
        while connected and (gateway.link is None or gateway.link.state != "connected"):
            await asyncio.sleep(0.02)
    try:
        yield gateway
    finally:
        gateway.request_stop()
        async with asyncio.timeout(15):
            await task


class Watcher:
    """An MQTT client that records every message under a filter."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None

    async def _collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.messages.append((message.topic.value, payload, message.retain))

    def json_on(self, topic: str) -> list[dict[str, Any]]:
        """Every JSON payload received on a topic, in order."""
        return [json.loads(p) for t, p, _ in self.messages if t == topic and p]

    async def wait_json(self, topic: str, predicate: Any = None, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for a JSON message on topic that satisfies predicate; return it."""
        async with asyncio.timeout(timeout):
            while True:
                for body in self.json_on(topic):
                    if predicate is None or predicate(body):
                        return body
                await asyncio.sleep(0.02)


@asynccontextmanager
async def watching(broker: Mosquitto, *filters: str) -> AsyncIterator[Watcher]:
    """Connect a client subscribed to filters; yield a Watcher collecting what arrives."""
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        watcher = Watcher(client)
        watcher._task = asyncio.create_task(watcher._collect())
        try:
            yield watcher
        finally:
            watcher._task.cancel()
            await asyncio.gather(watcher._task, return_exceptions=True)
