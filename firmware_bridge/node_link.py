"""Gateway side of a node on a serial port: keep it open, decode frames, run commands."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from firmware_bridge.errors import CommandTimeout, TransportError
from firmware_bridge.node_protocol import (
    Ack,
    Command,
    Event,
    EventWindow,
    Frame,
    FrameDecoder,
    Hello,
    Nack,
    encode_frame,
)
from firmware_bridge.streams import ByteStream, SerialStream

log = logging.getLogger(__name__)

# A session shorter than this does not reset the reopen backoff: a port that opens and
# fails at once (adapter errors on read, port held by another process) must not spin.
STABLE_SESSION_S = 5.0

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
    timeouts: int = 0  # commands that got no answer after all their attempts
    resends: int = 0  # command frames sent again (same seq) after a silent attempt
    events: int = 0  # EVENT frames delivered to on_frame (each seq once)
    duplicate_events: int = 0  # EVENT frames repeated by the node and not delivered again
    event_acks: int = 0  # ACKs sent for events, repeats included


class NodeLink:
    """Keep a node's port open (reopening after unplug) and hand its frames to on_frame."""

    def __init__(
        self,
        path: str,
        on_frame: Callable[[Frame], None],
        opener: Callable[[str], Awaitable[ByteStream]] = SerialStream.open,
        backoff: Callable[[int], float] = doubling_with_jitter,
        command_timeout_s: float = 2.0,
        stable_session_s: float = STABLE_SESSION_S,
    ) -> None:
        self.path = path
        self._on_frame = on_frame
        self._opener = opener
        self._backoff = backoff
        self._timeout = command_timeout_s
        self._stable_s = stable_session_s
        self._stream: ByteStream | None = None
        self._decoder = FrameDecoder()
        self._pending: dict[int, asyncio.Future[Ack | Nack]] = {}
        self._events = EventWindow()
        # A random start: after a gateway restart whose HELLO the node missed, our first
        # commands are unlikely to repeat a seq the node remembers as already executed.
        self._seq = random.randrange(0x10000)
        self.state = "starting"
        self.stats = NodeLinkStats()

    @property
    def decoder(self) -> FrameDecoder:
        """The frame decoder, whose stats count rejected input."""
        return self._decoder

    async def run(self) -> None:
        """Open, read and reopen until cancelled."""
        loop = asyncio.get_running_loop()
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
            opened_at = loop.time()
            self.stats.opens += 1
            self._set_state("open", self.path)
            try:
                await self._write(encode_frame(Hello("gateway", "edge"), self._next_seq()))
                while True:
                    for seq in self._dispatch(await self._stream.read()):
                        await self._write(encode_frame(Ack(seq), self._next_seq()))
                        self.stats.event_acks += 1
            except TransportError as err:
                self.stats.disconnects += 1
                self._set_state("lost", str(err))
            finally:
                self._close()
            if loop.time() - opened_at >= self._stable_s:
                attempt = 0  # it worked for a while: reopen at once, as after an unplug
            else:
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    async def send(self, command: Command, retries: int = 0) -> Ack | Nack:
        """Send a command, resending the same frame (same seq) up to `retries` times on silence.

        Returns the node's ACK or NACK; CommandTimeout after 1 + retries silent attempts,
        TransportError when the port is not open or closes meanwhile.
        """
        if retries < 0:
            raise ValueError(f"retries must not be negative, not {retries}")
        if self._stream is None:
            raise TransportError(self.path, "port is not open")
        seq = self._next_seq()
        frame = encode_frame(command, seq)
        future: asyncio.Future[Ack | Nack] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        self.stats.commands += 1
        try:
            for attempt in range(retries + 1):
                if attempt:
                    self.stats.resends += 1
                await self._write(frame)
                # asyncio.wait, not a timeout around the future: that would cancel the
                # future, and a late ACK to an earlier attempt must still count.
                done, _ = await asyncio.wait([future], timeout=self._timeout)
                if done:
                    return future.result()
            self.stats.timeouts += 1
            raise CommandTimeout(self.path, seq, self._timeout, retries + 1)
        finally:
            self._pending.pop(seq, None)

    async def ack(self, seq: int) -> None:
        """Acknowledge the EVENT with this seq (call once it is stored); never raises on I/O.

        A failed or skipped ACK only makes the node resend the event. An ACK for a seq
        forgotten at the node's HELLO is not sent: the restarted node may have reused it.
        """
        if not self._events.ack(seq):
            log.debug("node port %s: not acking event seq %d (node restarted since)", self.path, seq)
            return
        try:
            await self._write(encode_frame(Ack(seq), self._next_seq()))
        except TransportError as err:
            log.debug("node port %s: ACK of event seq %d not sent: %s", self.path, seq, err)
            return
        self.stats.event_acks += 1

    async def _write(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            raise TransportError(self.path, "port is not open")
        async with port_lock(self.path):
            await stream.write(data)

    def _dispatch(self, data: bytes) -> list[int]:
        """Handle received bytes; return the seqs of repeated, already acked events to ACK again."""
        reack: list[int] = []
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
                continue
            if isinstance(message, Hello):
                self._events.reset()  # the node (re)started: its seqs begin anew
            elif isinstance(message, Event):
                arrival = self._events.arrived(frame.seq, message)
                if arrival != "new":
                    # The node missed our ACK (acked: repeat it) or has not had one yet
                    # (pending: it comes when the event is stored).
                    self.stats.duplicate_events += 1
                    if arrival == "acked":
                        reack.append(frame.seq)
                    continue
                self.stats.events += 1
            self._on_frame(frame)
        return reack

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
