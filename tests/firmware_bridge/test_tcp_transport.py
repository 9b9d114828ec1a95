"""A node behind a TCP serial server (IPv4 and IPv6 loopback), through the same node link."""

from __future__ import annotations

import asyncio
import random

import pytest

from firmware_bridge.errors import TransportError
from firmware_bridge.node_link import NodeLink
from firmware_bridge.node_protocol import Ack, Command, CommandAction, Frame, Telemetry
from firmware_bridge.simulator import SimulatedNode, run_node
from firmware_bridge.streams import TcpStream
from tests.conftest import cancel_and_wait


async def serve_node(host: str) -> tuple[asyncio.Server, SimulatedNode, list[asyncio.Task[None]]]:
    node = SimulatedNode("tcp-node", interval_s=0.1, rng=random.Random(4))
    tasks: list[asyncio.Task[None]] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        stream = TcpStream(reader, writer, "server")
        try:
            await run_node(node, stream)
        except TransportError:
            pass
        finally:
            stream.close()  # dropping the connection is what the link must notice

    server = await asyncio.start_server(on_client, host, 0)
    return server, node, tasks


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_node_link_over_tcp_and_reconnect(host: str) -> None:
    server, node, tasks = await serve_node(host)
    port = server.sockets[0].getsockname()[1]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    frames: list[Frame] = []
    link = NodeLink(address, frames.append, opener=TcpStream.open, backoff=lambda attempt: 0.05)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(5):
            while not any(isinstance(f.message, Telemetry) for f in frames):
                await asyncio.sleep(0.02)
        assert isinstance(await link.send(Command(CommandAction.RELAY, channel=3, value=1)), Ack)
        assert node.relays == {3: True}
        # The converter drops the connection: the link notices and connects again.
        for t in list(tasks):
            await cancel_and_wait(t)
        async with asyncio.timeout(5):
            while link.stats.opens < 2 or link.state != "open":
                await asyncio.sleep(0.02)
        assert link.stats.disconnects >= 1
    finally:
        await cancel_and_wait(task)
        for t in tasks:
            if not t.done():
                await cancel_and_wait(t)
        server.close()
        await server.wait_closed()


async def test_refused_connection_is_a_transport_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        await TcpStream.open(f"127.0.0.1:{port}")
