"""The embedded amqtt broker: serves MQTT on loopback, moves off a taken port."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiomqtt
import pytest

from edge.embedded_broker import EmbeddedBroker
from tests.conftest import cancel_and_wait, free_port


async def start(broker: EmbeddedBroker) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(broker.run(ready.set))
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def test_serves_retained_messages_on_the_wanted_port() -> None:
    wanted = free_port()
    broker = EmbeddedBroker(wanted)
    task = await start(broker)
    try:
        assert broker.port == wanted
        async with aiomqtt.Client("127.0.0.1", wanted) as pub:
            await pub.publish("demo/status", b"online", qos=1, retain=True)
        async with aiomqtt.Client("127.0.0.1", wanted) as sub:
            await sub.subscribe("demo/#", qos=1)
            async with asyncio.timeout(5):
                message = await anext(aiter(sub.messages))
        assert message.payload == b"online" and message.retain
    finally:
        await cancel_and_wait(task)
    assert broker.port is None


async def test_taken_port_falls_back_to_a_free_one_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.embedded_broker")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        broker = EmbeddedBroker(taken)
        task = await start(broker)
        try:
            assert broker.port is not None and broker.port != taken
            assert f"port {taken} is taken" in caplog.text
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.publish("x", b"1", qos=1)
        finally:
            await cancel_and_wait(task)
