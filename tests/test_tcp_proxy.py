"""The fault-test TCP proxy: it forwards, black-holes without closing, restores and drops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from tests.conftest import Mosquitto
from tests.tcp_proxy import TcpProxy


class EchoServer:
    """A TCP echo server that records what reached it."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.closed = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(4096):
                self.received += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self.closed += 1
            writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    assert server.server is not None
    server.server.close()


async def proxied(echo: EchoServer, listen_host: str = "127.0.0.1") -> tuple[TcpProxy, int]:
    assert echo.server is not None
    proxy = TcpProxy()
    port = await proxy.start(listen_host, "127.0.0.1", int(echo.server.sockets[0].getsockname()[1]))
    return proxy, port


async def roundtrip(host: str, port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    writer.close()
    return got


async def silent(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if nothing (not even EOF) arrives within seconds: the connection is open and mute."""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize("listen_host", ["127.0.0.1", "::1"])
async def test_forwards_both_ways_on_ipv4_and_ipv6(echo: EchoServer, listen_host: str) -> None:
    proxy, port = await proxied(echo, listen_host)
    try:
        assert await roundtrip(listen_host, port, b"hello\x00" * 1000) == b"hello\x00" * 1000
        assert echo.received == b"hello\x00" * 1000
    finally:
        await proxy.stop()


async def test_blackhole_holds_everything_and_keeps_connections_open(echo: EchoServer) -> None:
    proxy, port = await proxied(echo)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"before")
        assert await asyncio.wait_for(reader.readexactly(6), 5) == b"before"
        proxy.blackhole()
        writer.write(b"during")
        await writer.drain()
        assert await silent(reader, 0.5)  # no echo, and no EOF: the socket stays open
        assert echo.received == b"before" and proxy.active == 1 and echo.closed == 0
        # A new connection is accepted by the kernel but never reaches the target.
        late_reader, _late_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await silent(late_reader, 0.3)
        assert echo.connections == 1
        proxy.restore()
        # The held bytes flow on (as TCP would retransmit them); the held connection is closed.
        assert await asyncio.wait_for(reader.readexactly(6), 5) == b"during"
        assert await asyncio.wait_for(late_reader.read(1), 5) == b""
        assert echo.connections == 1
        assert await roundtrip("127.0.0.1", port, b"after") == b"after"
        assert echo.connections == 2
        writer.close()
    finally:
        await proxy.stop()


async def test_drop_connections_closes_clients_and_upstreams(echo: EchoServer) -> None:
    proxy, port = await proxied(echo)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        proxy.blackhole()  # dropping works while black-holed too
        proxy.drop_connections()
        assert await asyncio.wait_for(reader.read(1), 2) == b""
        async with asyncio.timeout(2):
            while echo.closed < 1 or proxy.active:
                await asyncio.sleep(0.01)
        proxy.restore()
        assert await roundtrip("127.0.0.1", port, b"again") == b"again"
    finally:
        await proxy.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_an_mqtt_client_notices_the_blackhole_by_keepalive(mosquitto: Mosquitto) -> None:
    proxy = TcpProxy()
    port = await proxy.start("127.0.0.1", mosquitto.host, mosquitto.port)
    try:
        async with aiomqtt.Client("127.0.0.1", port, identifier="proxy-t", keepalive=1) as client:
            await client.subscribe("proxy/t", qos=1)
            await client.publish("proxy/t", b"1", qos=1)
            async with asyncio.timeout(5):
                async for message in client.messages:
                    assert message.payload == b"1"
                    break
            proxy.blackhole()
            started = time.monotonic()
            # No PINGRESP comes back, so the client's keepalive must end the link; the proxy
            # itself keeps the socket open (active stays 1 until the client gives up).
            with pytest.raises(aiomqtt.MqttError):
                async with asyncio.timeout(6):
                    async for _ in client.messages:
                        pass
            assert 0.9 <= time.monotonic() - started < 4
            assert proxy.blackholed and proxy.active == 1  # the proxy closed nothing
        proxy.restore()
        async with aiomqtt.Client("127.0.0.1", port, identifier="proxy-t2", keepalive=5) as again:
            await again.publish("proxy/t", b"2", qos=1)
    finally:
        await proxy.stop()
