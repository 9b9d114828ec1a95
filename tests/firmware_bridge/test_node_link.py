"""The gateway's node link: frames in, commands out, and recovery after an unplug."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_bridge.errors import CommandTimeout, TransportError
from firmware_bridge.node_link import NodeLink
from firmware_bridge.node_protocol import (
    Ack,
    Command,
    CommandAction,
    Event,
    EventCode,
    Frame,
    FrameDecoder,
    Hello,
    Nack,
    NackReason,
    ReadingKind,
    Telemetry,
    encode_frame,
)
from firmware_bridge.simulator import SimulatedNode, run_node
from firmware_bridge.streams import ByteStream, FdStream, open_pty
from tests.conftest import cancel_and_wait
from tests.node_plug import Plug, wait_for

PANIC = Event(EventCode.BUTTON_PRESSED, ReadingKind.PANIC_BUTTON)


async def test_reads_frames_runs_commands_and_survives_unplug(tmp_path: Path) -> None:
    plug = Plug(tmp_path / "usb-classroom-node-if00")
    plug.plug()
    frames: list[Frame] = []
    link = NodeLink(str(plug.link_path), frames.append, backoff=lambda attempt: 0.05)
    task = asyncio.create_task(link.run())
    try:
        # The HELLO (asked for on open) may come before or after the first TELEMETRY.
        await wait_for(lambda: {Hello, Telemetry} <= {type(f.message) for f in frames})
        assert isinstance(await link.send(Command(CommandAction.LIGHT_LEVEL, channel=0, value=40)), Ack)
        reply = await link.send(Command(CommandAction.RELAY, channel=7, value=1))
        assert isinstance(reply, Nack) and reply.reason is NackReason.BAD_ARGUMENT
        assert plug.node.lights == {0: 40}

        await plug.unplug()
        await wait_for(lambda: link.state == "absent")
        with pytest.raises(TransportError):
            await link.send(Command(CommandAction.RELAY, channel=0, value=1))
        assert link.stats.disconnects == 1 and link.stats.open_failures >= 1

        count = len(frames)
        plug.plug()
        await wait_for(lambda: link.state == "open" and len(frames) > count + 2)
        assert link.stats.opens == 2
        assert isinstance(await link.send(Command(CommandAction.RELAY, channel=0, value=1)), Ack)
    finally:
        await cancel_and_wait(task)
        if plug.task is not None and not plug.task.done():
            await plug.unplug()


async def test_a_silent_node_times_out_a_command_after_resending_the_same_seq() -> None:
    master, path = open_pty()  # nobody answers on the other side
    link = NodeLink(path, lambda f: None, command_timeout_s=0.2)
    task = asyncio.create_task(link.run())
    try:
        await wait_for(lambda: link.state == "open")
        with pytest.raises(CommandTimeout, match=r"no ACK/NACK for seq \d+ after 1 attempt of"):
            await link.send(Command(CommandAction.RELAY, channel=0, value=1))
        assert link.stats.timeouts == 1 and link.stats.resends == 0
        with pytest.raises(CommandTimeout, match="after 3 attempts") as caught:
            await link.send(Command(CommandAction.IR_CODE, data=b"\x20\xdf"), retries=2)
        assert caught.value.attempts == 3
        assert link.stats.timeouts == 2 and link.stats.resends == 2 and link.stats.commands == 2
        sent = await read_frames(master, lambda got: sum(isinstance(f.message, Command) for f in got) >= 4)
        commands = [f for f in sent if isinstance(f.message, Command)]
        assert len(commands) == 4
        assert {f.seq for f in commands[1:]} == {caught.value.seq}  # one seq for all attempts
        assert commands[0].seq != caught.value.seq
        with pytest.raises(ValueError, match="retries"):
            await link.send(Command(CommandAction.RELAY, channel=0, value=1), retries=-1)
    finally:
        await cancel_and_wait(task)
        master.close()


async def read_frames(master: FdStream, enough: Callable[[list[Frame]], bool]) -> list[Frame]:
    """Frames the gateway wrote to the node's side of a pty, until enough(frames)."""
    decoder, got = FrameDecoder(), []
    async with asyncio.timeout(5):
        while not enough(got):
            got += decoder.feed(await master.read())
    return got


async def start_node(frames: list[Frame], command_timeout_s: float = 2.0,
                     ) -> tuple[SimulatedNode, NodeLink, list[asyncio.Task[None]], FdStream]:
    """A simulated node on a pty (no TELEMETRY after the first) and a link to it, talking."""
    master, path = open_pty()
    node = SimulatedNode("node-q", interval_s=3600, rng=random.Random(5))
    link = NodeLink(path, frames.append, command_timeout_s=command_timeout_s)
    tasks = [asyncio.create_task(run_node(node, master)), asyncio.create_task(link.run())]
    # Once the node has answered the gateway's HELLO it sends nothing on its own for an
    # hour, so the next frame it sends is the one a test wants lost.
    await wait_for(lambda: node.decoder_stats["frames"] >= 1
                   and any(isinstance(f.message, Hello) for f in frames))
    return node, link, tasks, master


async def stop(tasks: list[asyncio.Task[None]], master: FdStream) -> None:
    for task in tasks:
        await cancel_and_wait(task)
    master.close()


async def test_a_retried_ir_code_is_sent_once_when_the_ack_was_lost() -> None:
    frames: list[Frame] = []
    node, link, tasks, master = await start_node(frames, command_timeout_s=0.5)
    power = Command(CommandAction.IR_CODE, channel=1, data=b"\x20\xdf\x10")  # a toggle
    try:
        node.lose_next_frames = 1  # the node's ACK to the first attempt
        assert isinstance(await link.send(power, retries=3), Ack)
        assert node.ir_sent == [b"\x20\xdf\x10"]  # pressed once, not toggled back
        assert node.frames_lost == 1 and node.repeated_commands >= 1 and link.stats.resends >= 1
        # A new command (a new seq) with the same code is carried out again.
        assert isinstance(await link.send(power), Ack)
        assert len(node.ir_sent) == 2
    finally:
        await stop(tasks, master)


async def test_a_panic_event_survives_a_lost_frame_and_is_delivered_once() -> None:
    frames: list[Frame] = []
    node, link, tasks, master = await start_node(frames)
    try:
        node.lose_next_frames = 1
        node.press(ReadingKind.PANIC_BUTTON)  # its first transmission is lost on the line
        await wait_for(lambda: any(f.message == PANIC for f in frames))
        (event,) = [f for f in frames if f.message == PANIC]
        assert node.frames_lost == 1 and node.unacked_events == [event.seq]
        # Until the gateway has stored it and ACKs, the node repeats it; not delivered again.
        await wait_for(lambda: link.stats.duplicate_events >= 1)
        await link.ack(event.seq)
        await wait_for(lambda: not node.unacked_events)
        assert [f for f in frames if isinstance(f.message, Event)] == [event]
        assert link.stats.events == 1 and link.stats.event_acks == 1
    finally:
        await stop(tasks, master)


class FakeStream:
    """A ByteStream fed by the test; what the link writes is kept."""

    name = "fake"

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.written = bytearray()

    async def read(self) -> bytes:
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass

    def acks(self) -> list[int]:
        return [f.message.seq for f in FrameDecoder().feed(bytes(self.written)) if isinstance(f.message, Ack)]

    async def settle(self) -> None:
        """Wait until the link has taken everything fed so far."""
        await wait_for(self.incoming.empty)
        for _ in range(3):
            await asyncio.sleep(0)


async def test_event_dedupe_window_acks_and_hello() -> None:
    stream = FakeStream()

    async def opener(path: str) -> ByteStream:
        return stream

    frames: list[Frame] = []
    link = NodeLink("fake", frames.append, opener=opener)
    task = asyncio.create_task(link.run())

    async def feed(message: Event | Hello, seq: int) -> None:
        stream.incoming.put_nowait(encode_frame(message, seq))
        await stream.settle()

    hello = Hello("node-f", "1.0")
    alarm = Event(EventCode.ALARM_RAISED, ReadingKind.SMOKE_ALARM)
    try:
        await feed(PANIC, 10)
        await feed(PANIC, 10)  # a repeat before we acked: ignored, the ACK comes once stored
        assert [f.seq for f in frames] == [10] and stream.acks() == []
        await link.ack(10)
        assert stream.acks() == [10]
        await feed(PANIC, 10)  # the node missed our ACK: the link repeats it by itself
        assert [f.seq for f in frames] == [10] and stream.acks() == [10, 10]
        assert link.stats.duplicate_events == 2 and link.stats.event_acks == 2

        await feed(alarm, 10)  # same seq, another event: a restart whose HELLO we missed
        assert [f.message for f in frames] == [PANIC, alarm]
        await feed(hello, 1)  # the node restarted: its seqs begin anew
        await link.ack(10)  # too late for the old seq 10: not sent, the node may reuse 10
        assert stream.acks() == [10, 10]
        await feed(PANIC, 10)
        assert [f.message for f in frames] == [PANIC, alarm, hello, PANIC]
        assert link.stats.events == 3
    finally:
        await cancel_and_wait(task)


async def test_a_port_that_fails_at_once_is_reopened_with_growing_backoff() -> None:
    class Broken(FakeStream):
        async def read(self) -> bytes:
            raise TransportError("fake", "multiple access on port?")

    async def opener(path: str) -> ByteStream:
        await asyncio.sleep(0)
        return Broken()

    attempts: list[int] = []

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    link = NodeLink("fake", lambda f: None, opener=opener, backoff=backoff)
    task = asyncio.create_task(link.run())
    try:
        await wait_for(lambda: len(attempts) >= 5)
        assert attempts[:5] == [0, 1, 2, 3, 4]
    finally:
        await cancel_and_wait(task)

    # A session that lasted (here: any) reopens at once, with the backoff started over.
    attempts.clear()
    link = NodeLink("fake", lambda f: None, opener=opener, backoff=backoff, stable_session_s=0.0)
    task = asyncio.create_task(link.run())
    try:
        await wait_for(lambda: link.stats.opens >= 5)
        assert attempts == []
    finally:
        await cancel_and_wait(task)
