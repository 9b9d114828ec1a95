"""The node simulator over a real pseudo-terminal, read through pyserial like a real node."""

from __future__ import annotations

import asyncio
import random

import pytest

from firmware_bridge.errors import TransportError
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
from firmware_bridge.simulator import EVENT_RESEND_S, EVENT_SENDS, RECENT_COMMANDS, SimulatedNode, run_node
from firmware_bridge.streams import SerialStream, open_pty
from tests.conftest import cancel_and_wait
from tests.node_plug import wait_for


async def frames_until(port: SerialStream, decoder: FrameDecoder, want: type,
                       timeout: float = 5.0) -> list[Frame]:
    got: list[Frame] = []
    async with asyncio.timeout(timeout):
        while not any(isinstance(f.message, want) for f in got):
            got += decoder.feed(await port.read())
    return got


async def test_node_over_pty_reports_and_obeys_commands() -> None:
    master, path = open_pty()
    node = SimulatedNode("node-r101", interval_s=0.2, rng=random.Random(1))
    sim = asyncio.create_task(run_node(node, master, garbage_every=2))
    await asyncio.sleep(0.3)  # the node starts first; opening the port flushes its HELLO
    port = await SerialStream.open(path)
    decoder = FrameDecoder()
    try:
        await port.write(encode_frame(Hello("gateway", "edge"), 1))  # "who are you?"
        got = await frames_until(port, decoder, Hello)
        hello = next(f.message for f in got if isinstance(f.message, Hello))
        assert hello.node_id == "node-r101" and ReadingKind.CO2 in hello.capabilities
        got = await frames_until(port, decoder, Telemetry)
        telemetry = next(f.message for f in got if isinstance(f.message, Telemetry))
        values = dict(telemetry.readings)
        assert 400 <= values[ReadingKind.CO2] <= 5000 and 10 <= values[ReadingKind.TEMPERATURE] <= 35

        await port.write(encode_frame(Command(CommandAction.RELAY, channel=1, value=1), 501))
        acks = [f.message for f in await frames_until(port, decoder, Ack)]
        assert Ack(501) in acks and node.relays == {1: True}

        await port.write(encode_frame(Command(CommandAction.RELAY, channel=9, value=1), 502))
        nacks = [f.message for f in await frames_until(port, decoder, Nack)]
        assert Nack(502, NackReason.BAD_ARGUMENT) in nacks

        await port.write(encode_frame(Command(CommandAction.REPORT_INTERVAL, value=1), 503))
        await frames_until(port, decoder, Ack)
        assert node.interval_s == 1.0

        # The injected line noise was counted and dropped; reports kept coming through.
        await frames_until(port, decoder, Telemetry)
        assert decoder.stats.frames >= 4 and decoder.stats.rejected >= 1
    finally:
        await cancel_and_wait(sim)
        port.close()
        master.close()


def test_alarm_events_and_states() -> None:
    node = SimulatedNode("n", rng=random.Random(2))
    (frame,) = FrameDecoder().feed(node.raise_alarm(ReadingKind.SMOKE_ALARM))
    assert frame.message == Event(EventCode.ALARM_RAISED, ReadingKind.SMOKE_ALARM)
    (frame,) = FrameDecoder().feed(node.raise_alarm(ReadingKind.PANIC_BUTTON))
    assert frame.message == Event(EventCode.BUTTON_PRESSED, ReadingKind.PANIC_BUTTON)
    (report,) = FrameDecoder().feed(node.telemetry())
    assert isinstance(report.message, Telemetry)
    assert dict(report.message.readings)[ReadingKind.SMOKE_ALARM] == 1.0
    (cleared,) = FrameDecoder().feed(node.raise_alarm(ReadingKind.SMOKE_ALARM, active=False))
    assert cleared.message == Event(EventCode.ALARM_CLEARED, ReadingKind.SMOKE_ALARM)


async def test_missing_serial_port_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="/dev/does-not-exist"):
        await SerialStream.open("/dev/does-not-exist")


async def test_edge_simulate_node_pty_command() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "edge", "simulate", "node", "--pty",
                             "--node-id", "cli-node", "--interval", "0.2", "--panic-every", "0.5"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        path = line.strip().rsplit(" on ", 1)[1]
        port = await SerialStream.open(path)
        decoder = FrameDecoder()
        await port.write(encode_frame(Hello("gateway", "edge"), 1))
        got = await frames_until(port, decoder, Event, timeout=10)
        hellos = [f.message for f in got if isinstance(f.message, Hello)]
        assert hellos and hellos[0].node_id == "cli-node"
        port.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_events_are_resent_with_the_same_seq_until_acked_or_given_up() -> None:
    now = [100.0]
    node = SimulatedNode("n", rng=random.Random(4), clock=lambda: now[0])
    frame = node.raise_alarm(ReadingKind.PANIC_BUTTON)
    (event,) = FrameDecoder().feed(frame)
    now[0] += EVENT_RESEND_S - 0.01
    assert node.due_frames() == []
    now[0] += 0.01
    assert node.due_frames() == [frame]  # byte for byte: same seq, so the gateway can dedupe
    assert node.due_frames() == []  # the next one only after another interval
    assert node.receive(encode_frame(Ack(event.seq), 9)) == []
    now[0] += 10
    assert node.due_frames() == [] and node.unacked_events == []

    node.raise_alarm(ReadingKind.DOOR_OPEN)
    sends = 1
    for _ in range(EVENT_SENDS + 3):
        now[0] += EVENT_RESEND_S
        sends += len(node.due_frames())
    assert sends == EVENT_SENDS and node.events_given_up == 1 and node.unacked_events == []

    node.raise_alarm(ReadingKind.SMOKE_ALARM)
    (hello,) = FrameDecoder().feed(node.restart())  # a reset loses what was not acked
    assert isinstance(hello.message, Hello) and node.unacked_events == [] and node.events_given_up == 2


def test_a_repeated_command_seq_is_answered_but_not_executed_again() -> None:
    node = SimulatedNode("n", rng=random.Random(4))
    ir = encode_frame(Command(CommandAction.IR_CODE, channel=0, data=b"\x01"), 40)
    bad = encode_frame(Command(CommandAction.RELAY, channel=9, value=1), 41)

    def replies(data: bytes) -> list[object]:
        return [f.message for f in FrameDecoder().feed(b"".join(node.receive(data)))]

    assert replies(ir) == [Ack(40)]
    assert replies(bad) == [Nack(41, NackReason.BAD_ARGUMENT)]
    assert replies(ir + bad) == [Ack(40), Nack(41, NackReason.BAD_ARGUMENT)]  # the same answers
    assert node.ir_sent == [b"\x01"] and node.repeated_commands == 2
    for seq in range(42, 42 + RECENT_COMMANDS):  # only the last 8 seqs are remembered
        node.receive(encode_frame(Command(CommandAction.LIGHT_LEVEL, value=seq), seq))
    assert replies(ir) == [Ack(40)] and node.ir_sent == [b"\x01", b"\x01"]
    # A gateway HELLO (it reopened the port, maybe restarted) clears the memory too.
    node.receive(encode_frame(Hello("gateway", "edge"), 1))
    assert replies(ir) == [Ack(40)] and len(node.ir_sent) == 3


async def test_serial_stream_close_waits_for_the_read_in_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware_bridge import streams

    monkeypatch.setattr(streams, "POLL_S", 30.0)  # a read that would block for 30 s
    master, path = open_pty()
    port = await SerialStream.open(path)
    try:
        read = asyncio.create_task(port.read())
        await wait_for(lambda: port._busy == 1)  # the read runs in its worker thread
        port.close()
        async with asyncio.timeout(10):  # cancel_read ends it long before the 30 s
            assert await read == b""
        assert not port._port.is_open  # closed by the read's thread once it was out
        with pytest.raises(TransportError, match="closed"):
            await port.read()
        port.close()  # twice is harmless
    finally:
        master.close()
