"""Gateway side of a node on a serial port: keep it open, decode frames, run commands."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from firmware_bridge.errors import CommandTimeout, TransportError
from firmware_bridge.node_protocol import Ack, Command, Frame, FrameDecoder, Hello, Nack, encode_frame
from firmware_bridge.streams import ByteStream, SerialStream

log = logging.getLogger(__name__)

_PORT_LOCKS: dict[str, asyncio.Lock] = {}


def port_lock(path: str) -> asyncio.Lock:
    """The one lock of a physical port, so devices sharing an RS-485 bus take turns."""
    return _PORT_LOCKS.setdefault(os.path.realpath(path), asyncio.Lock())


def doubling_with_jitter(attempt: int, initial_s: float = 0.5, max_s: float = 30.0) -> float:
    """Delay before reopen attempt n: doubling up to max_s, at least half of it."""
    ceiling = min(max_s, initial_s * 2**attempt)
    return float(ceiling / 2 + random.random() * ceiling / 2)


@dataclass
class NodeLinkStats:
    """Counters of one node link."""

    opens: int = 0
    open_failures: int = 0
    disconnects: int = 0
    frames: int = 0
    commands: int = 0
    acks: int = 0
    nacks: int = 0
    timeouts: int = 0


class NodeLink:
    """Keep a node's port open (reopening after unplug) and hand its frames to on_frame."""

    def __init__(
        self,
        path: str,
        on_frame: Callable[[Frame], None],
        opener: Callable[[str], Awaitable[ByteStream]] = SerialStream.open,
        backoff: Callable[[int], float] = doubling_with_jitter,
        command_timeout_s: float = 2.0,
    ) -> None:
        self.path = path
        self._on_frame = on_frame
        self._opener = opener
        self._backoff = backoff
        self._timeout = command_timeout_s
        self._stream: ByteStream | None = None
        self._decoder = FrameDecoder()
        self._pending: dict[int, asyncio.Future[Ack | Nack]] = {}
        self._seq = 0
        self.state = "starting"
        self.stats = NodeLinkStats()

    @property
    def decoder(self) -> FrameDecoder:
        """The frame decoder, whose stats count rejected input."""
        return self._decoder

    async def run(self) -> None:
        """Open, read and reopen until cancelled."""
        attempt = 0
        while True:
            try:
                self._stream = await self._opener(self.path)
            except TransportError as err:
                self.stats.open_failures += 1
                self._set_state("absent", str(err))
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            self.stats.opens += 1
            self._set_state("open", self.path)
            try:
                await self._write(encode_frame(Hello("gateway", "edge"), self._next_seq()))
                while True:
                    self._dispatch(await self._stream.read())
            except TransportError as err:
                self.stats.disconnects += 1
                self._set_state("lost", str(err))
            finally:
                self._close()

    async def send(self, command: Command) -> Ack | Nack:
        """Send a command and return the node's ACK or NACK; CommandTimeout if it is silent."""
        if self._stream is None:
            raise TransportError(self.path, "port is not open")
        seq = self._next_seq()
        future: asyncio.Future[Ack | Nack] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        self.stats.commands += 1
        try:
            await self._write(encode_frame(command, seq))
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError as err:
            self.stats.timeouts += 1
            raise CommandTimeout(self.path, seq, self._timeout) from err
        finally:
            self._pending.pop(seq, None)

    async def _write(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            raise TransportError(self.path, "port is not open")
        async with port_lock(self.path):
            await stream.write(data)

    def _dispatch(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            self.stats.frames += 1
            message = frame.message
            if isinstance(message, Ack | Nack):
                if isinstance(message, Ack):
                    self.stats.acks += 1
                else:
                    self.stats.nacks += 1
                future = self._pending.get(message.seq)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                self._on_frame(frame)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TransportError(self.path, "port closed"))
        self._pending.clear()

    def _set_state(self, state: str, detail: str) -> None:
        if state != self.state:
            log.info("node port %s: %s (%s)", self.path, state, detail)
            self.state = state
