"""A TCP proxy for network-fault tests: forward, black-hole without closing, drop connections."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One client connection and, once it is forwarded, its connection to the target."""

    client: asyncio.StreamWriter
    task: asyncio.Task[Any] | None = None
    upstream: asyncio.StreamWriter | None = None
    held: bool = False  # accepted while black-holed: never forwarded
    closed: bool = False
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        """Close both sockets now and stop forwarding."""
        self.closed = True
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()
        for pump in self.pumps:
            pump.cancel()


class TcpProxy:
    """Forward TCP connections from a local port to a target, with switchable faults.

    blackhole() behaves like a network partition: sockets stay open, nothing is forwarded
    either way and nothing is closed, so an MQTT client gets no PINGRESP and must notice the
    dead link by its keepalive. Bytes that arrive meanwhile are held, not dropped (TCP would
    retransmit them after the partition heals), and the proxy stops reading so the senders'
    buffers back up as they would. Connections accepted while black-holed (the kernel
    completes the handshake) get no upstream; restore() closes them and forwards the rest.
    """

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._target: tuple[str, int] = ("", 0)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self.accepted = 0

    async def start(self, listen_host: str, target_host: str, target_port: int, listen_port: int = 0) -> int:
        """Listen on listen_port (a free one by default) of listen_host (IPv4 or IPv6); return the port."""
        self._target = (target_host, target_port)
        self._server = await asyncio.start_server(self._serve, listen_host, listen_port)
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active(self) -> int:
        """Client connections currently open through the proxy."""
        return sum(1 for link in self._links if not link.closed)

    @property
    def blackholed(self) -> bool:
        """Whether forwarding is stopped."""
        return not self._flowing.is_set()

    def blackhole(self) -> None:
        """Stop forwarding in both directions without closing any socket."""
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again; connections accepted during the blackhole are closed."""
        for link in list(self._links):
            if link.held:
                link.close()
        self._flowing.set()

    def drop_connections(self) -> None:
        """Close every client connection (and its upstream) now; the listener stays."""
        for link in list(self._links):
            link.close()

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for the handlers to end."""
        if self._server is not None:
            self._server.close()
        tasks = [link.task for link in self._links if link.task is not None]
        self.drop_connections()
        # Wake held handlers so they end by themselves: cancelling a stream handler task makes
        # asyncio log a spurious error on Python 3.11.
        self._flowing.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer, asyncio.current_task())
        self._links.add(link)
        self.accepted += 1
        try:
            if not self._flowing.is_set():
                link.held = True
                await self._flowing.wait()
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self._target)
            except OSError:
                return  # target down: the client sees its connection closed, like a refused connect
            if link.closed:
                return
            link.pumps = [asyncio.create_task(self._pump(reader, link.upstream)),
                          asyncio.create_task(self._pump(up_reader, writer))]
            # Either side ending ends the link: MQTT has no use for half-closed connections.
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.close()
            self._links.discard(link)
            await asyncio.gather(*link.pumps, return_exceptions=True)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = await src.read(CHUNK)
                # Black-holed: hold this chunk (and the end of the stream) until restored; not
                # reading further lets the kernel buffers fill like a silent network would.
                await self._flowing.wait()
                if not data:
                    return
                dst.write(data)
                await dst.drain()
