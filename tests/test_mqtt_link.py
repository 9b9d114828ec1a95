"""The MQTT link against a real Mosquitto: status, will, reconnects, bad payloads."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from edge.backoff import Backoff
from edge.errors import MqttUnavailable
from edge.mqtt import BrokerEndpoint, MqttLink, StatusTopic
from tests.conftest import Mosquitto, cancel_and_wait, free_port, start_mosquitto

OFFLINE = b'{"state":"offline"}'


def make_link(port: int, topic: str, client_id: str = "edge-t") -> MqttLink:
    return MqttLink(
        "mqtt-test",
        lambda: BrokerEndpoint("127.0.0.1", port),
        client_id,
        StatusTopic(topic, lambda: b'{"state":"online"}', OFFLINE),
        keepalive_s=5,
        backoff=Backoff(0.1, 0.5),
    )


async def retained(port: int, topic: str) -> dict[str, object]:
    """Read the retained message on topic as a fresh subscriber would."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert message.retain
                return json.loads(bytes(message.payload))  # type: ignore[arg-type]
    raise AssertionError("no retained message")


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_online_on_connect_and_offline_on_clean_stop(mosquitto: Mosquitto) -> None:
    topic = "t/status/clean"
    link = make_link(mosquitto.port, topic)
    task = asyncio.create_task(link.run(lambda: None))
    await wait_until(lambda: link.state == "connected")
    assert (await retained(mosquitto.port, topic))["state"] == "online"
    await cancel_and_wait(task)
    assert (await retained(mosquitto.port, topic))["state"] == "offline"
    assert link.state == "stopped"


async def test_subscribe_publish_and_bad_payloads_do_not_kill_the_link(mosquitto: Mosquitto) -> None:
    link = make_link(mosquitto.port, "t/status/sub", "edge-sub")
    got: list[dict[str, object]] = []

    async def handler(topic: str, payload: bytes) -> None:
        if payload == b"bug":
            raise RuntimeError("a handler bug")  # must not end the session either
        got.append(json.loads(payload))  # json raises ValueError on garbage

    link.subscribe("t/in/#", handler)
    task = asyncio.create_task(link.run(lambda: None))
    await wait_until(lambda: link.state == "connected")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as peer:
        await peer.publish("t/in/a", b"\xff not json", qos=1)
        await peer.publish("t/in/c", b"bug", qos=1, retain=True)
        await peer.publish("t/in/b", b'{"ok": 1}', qos=1)
        await peer.publish("t/in/c", b"", qos=1, retain=True)
    await wait_until(lambda: len(got) == 1)
    assert got == [{"ok": 1}] and link.stats.rejected == 3 and link.state == "connected"
    assert link.stats.connects == 1
    await link.publish("t/out", b"x", qos=1)
    assert link.stats.published == 1
    await cancel_and_wait(task)
    with pytest.raises(MqttUnavailable):
        await link.publish("t/out", b"x")


async def test_unreachable_broker_is_retried_and_logged_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.mqtt")
    port = free_port()
    link = make_link(port, "t/status/late", "edge-late")
    task = asyncio.create_task(link.run(lambda: None))
    await asyncio.sleep(1.5)  # several attempts at 0.1-0.5 s backoff
    assert link.state == "disconnected" and not task.done()
    late = start_mosquitto(tmp_path, port)
    try:
        await wait_until(lambda: link.state == "connected", timeout=10)
        messages = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt"]
        assert sum("unavailable" in m for m in messages) == 1
        assert sum("connected to" in m for m in messages) == 1
        # The broker goes away and comes back: one more pair of log lines, not one per retry.
        late.stop()
        await wait_until(lambda: link.state == "disconnected")
        await asyncio.sleep(1.0)
        late = start_mosquitto(tmp_path, port)
        await wait_until(lambda: link.state == "connected", timeout=10)
        messages = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt"]
        assert sum("unavailable" in m for m in messages) == 2
        assert link.stats.connects == 2
    finally:
        await cancel_and_wait(task)
        late.stop()


async def test_publish_many_delivers_in_order_without_nagle(mosquitto: Mosquitto) -> None:
    link = make_link(mosquitto.port, "t/status/many", "edge-many")
    with pytest.raises(MqttUnavailable):
        await link.publish_many([("t/many/x", b"0")])
    task = asyncio.create_task(link.run(lambda: None))
    await wait_until(lambda: link.state == "connected")
    sock = link._client._client.socket()  # type: ignore[union-attr]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    got: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as peer:
        await peer.subscribe("t/many/#", qos=0)
        await link.publish_many([(f"t/many/{i % 3}", str(i).encode()) for i in range(2000)])
        await link.publish_many([])
        async with asyncio.timeout(10):
            async for message in peer.messages:
                got.append(bytes(message.payload))  # type: ignore[arg-type]
                if len(got) == 2000:
                    break
    assert got == [str(i).encode() for i in range(2000)]
    assert link.stats.published == 2000
    await cancel_and_wait(task)
