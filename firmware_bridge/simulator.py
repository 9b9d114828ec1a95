"""A classroom sensor node that speaks node protocol v1: for demos, tests and bench work."""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_bridge.drift import DRIFTS
from firmware_bridge.node_protocol import (
    READING_KINDS,
    Ack,
    Command,
    CommandAction,
    Event,
    EventCode,
    FrameDecoder,
    Hello,
    Message,
    Nack,
    NackReason,
    ReadingKind,
    Telemetry,
    encode_frame,
)
from firmware_bridge.streams import ByteStream, SerialStream, open_pty

FIRMWARE = "sim-1.0.0"
EVENT_RESEND_S = 0.5  # an unacknowledged EVENT is sent again after this long
EVENT_SENDS = 20  # then the node gives up on it (the gateway has been gone for 10 s)
MAX_UNACKED = 16  # events kept for resending; the oldest goes first (bounded RAM)
RECENT_COMMANDS = 8  # executed command seqs remembered, so a resent COMMAND runs once


@dataclass
class _Unacked:
    frame: bytes
    sends: int
    due: float


@dataclass
class SimulatedNode:
    """The node's behaviour without any I/O: frames out for time and bytes in."""

    node_id: str
    interval_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    relays: dict[int, bool] = field(default_factory=dict)
    lights: dict[int, int] = field(default_factory=dict)
    ir_sent: list[bytes] = field(default_factory=list)
    alarms: dict[ReadingKind, bool] = field(default_factory=dict)
    motion: bool = False
    clock: Callable[[], float] = field(default=time.monotonic)
    lose_next_frames: int = 0  # test knob: run_node drops this many outgoing frames
    frames_lost: int = 0
    repeated_commands: int = 0  # COMMANDs received again (same seq) and not executed again
    events_given_up: int = 0  # EVENTs dropped unacknowledged after EVENT_SENDS sends

    def __post_init__(self) -> None:
        self._seq = 0
        self._decoder = FrameDecoder()
        self._values = {kind: drift.typical for kind, drift in DRIFTS.items()}
        self._unacked: OrderedDict[int, _Unacked] = OrderedDict()
        self._outbox: list[bytes] = []
        self._executed: OrderedDict[int, Message] = OrderedDict()  # command seq -> ACK/NACK

    @property
    def unacked_events(self) -> list[int]:
        """Seqs of EVENTs sent but not yet acknowledged by the gateway."""
        return list(self._unacked)

    @property
    def decoder_stats(self) -> dict[str, int]:
        """Counters of what the node received."""
        return dict(vars(self._decoder.stats))

    def frame(self, message: Message) -> bytes:
        """Encode a message with the node's next sequence number."""
        self._seq = (self._seq + 1) & 0xFFFF
        return encode_frame(message, self._seq)

    def hello(self) -> bytes:
        """The HELLO a node sends after it starts."""
        caps = frozenset(READING_KINDS)
        return self.frame(Hello(self.node_id, FIRMWARE, caps, frozenset(CommandAction)))

    def telemetry(self) -> bytes:
        """One TELEMETRY frame: drifting measurements and the binary states."""
        readings: list[tuple[ReadingKind, float]] = []
        for kind, drift in DRIFTS.items():
            self._values[kind] = drift.next(self._values[kind], self.rng)
            readings.append((kind, self._values[kind]))
        self.motion = self.rng.random() < 0.3
        readings.append((ReadingKind.MOTION, float(self.motion)))
        for kind in (ReadingKind.DOOR_OPEN, ReadingKind.SMOKE_ALARM, ReadingKind.PANIC_BUTTON):
            readings.append((kind, float(self.alarms.get(kind, False))))
        return self.frame(Telemetry(tuple(readings)))

    def raise_alarm(self, kind: ReadingKind, active: bool = True) -> bytes:
        """Set or clear an alarm input; return the EVENT frame, kept for resending until ACKed."""
        self.alarms[kind] = active
        if kind is ReadingKind.PANIC_BUTTON and active:
            event = Event(EventCode.BUTTON_PRESSED, kind)
        else:
            event = Event(EventCode.ALARM_RAISED if active else EventCode.ALARM_CLEARED, kind)
        frame = self.frame(event)
        self._unacked[self._seq] = _Unacked(frame, 1, self.clock() + EVENT_RESEND_S)
        while len(self._unacked) > MAX_UNACKED:
            self._unacked.popitem(last=False)
            self.events_given_up += 1
        return frame

    def press(self, kind: ReadingKind, active: bool = True) -> None:
        """Like raise_alarm, but the frame goes out with run_node's next due_frames()."""
        self._outbox.append(self.raise_alarm(kind, active))

    def due_frames(self) -> list[bytes]:
        """Frames to send now: pressed events, and unacknowledged events whose resend is due."""
        frames, self._outbox = self._outbox, []
        now = self.clock()
        for seq, pending in list(self._unacked.items()):
            if pending.due > now:
                continue
            if pending.sends >= EVENT_SENDS:
                del self._unacked[seq]
                self.events_given_up += 1
                continue
            pending.sends += 1
            pending.due = now + EVENT_RESEND_S
            frames.append(pending.frame)  # the same bytes: same seq, so the gateway can dedupe
        return frames

    def transmit(self, frame: bytes) -> bytes:
        """The bytes that reach the line for a frame: b'' while lose_next_frames is set."""
        if self.lose_next_frames > 0:
            self.lose_next_frames -= 1
            self.frames_lost += 1
            return b""
        return frame

    def restart(self) -> bytes:
        """Forget what a reset loses (unacked events, executed commands); return the HELLO."""
        self.events_given_up += len(self._unacked)
        self._unacked.clear()
        self._outbox.clear()
        self._executed.clear()
        return self.hello()

    def receive(self, data: bytes) -> list[bytes]:
        """Take bytes from the gateway; return replies (HELLO to a HELLO, ACK/NACK to a COMMAND)."""
        replies = []
        for frame in self._decoder.feed(data):
            message = frame.message
            if isinstance(message, Hello):
                # A gateway that (re)opened the port missed our start-up HELLO: repeat it.
                # It may also have restarted and number its commands anew.
                self._executed.clear()
                replies.append(self.hello())
            elif isinstance(message, Ack):
                self._unacked.pop(message.seq, None)  # the gateway stored that event
            elif isinstance(message, Command):
                replies.append(self.frame(self._command_reply(frame.seq, message)))
        return replies

    def _command_reply(self, seq: int, command: Command) -> Message:
        earlier = self._executed.get(seq)
        if earlier is not None:
            # A resend after our ACK/NACK was lost: answer again, but do not act twice.
            self.repeated_commands += 1
            return earlier
        reason = self._obey(command)
        reply: Message = Ack(seq) if reason is None else Nack(seq, reason)
        self._executed[seq] = reply
        while len(self._executed) > RECENT_COMMANDS:
            self._executed.popitem(last=False)
        return reply

    def _obey(self, command: Command) -> NackReason | None:
        if command.action is CommandAction.RELAY:
            if command.channel > 3:
                return NackReason.BAD_ARGUMENT  # the simulated board has relays 0-3
            self.relays[command.channel] = bool(command.value)
        elif command.action is CommandAction.LIGHT_LEVEL:
            self.lights[command.channel] = command.value
        elif command.action is CommandAction.IR_CODE:
            self.ir_sent.append(command.data)
        else:
            self.interval_s = float(command.value)
        return None


async def run_node(
    node: SimulatedNode, stream: ByteStream, garbage_every: int = 0, panic_every_s: float = 0.0,
    dropout_every_s: float = 0.0, dropout_for_s: float = 10.0,
) -> None:
    """Speak for the node on a stream until cancelled or the stream fails.

    garbage_every: put line noise before every Nth TELEMETRY frame (0 = never).
    panic_every_s: press the panic button on this schedule (0 = never); released 1 s later.
    dropout_every_s: fall silent (send nothing, answer nothing, like a hung or browned-out
    node) for dropout_for_s on this schedule (0 = never); a HELLO follows, as after a reset.
    EVENT frames are resent until the gateway ACKs them; node.lose_next_frames drops frames.
    """

    async def send(frame: bytes) -> None:
        if data := node.transmit(frame):
            await stream.write(data)

    loop = asyncio.get_running_loop()
    await send(node.hello())
    next_report = loop.time()
    next_panic = loop.time() + panic_every_s if panic_every_s else float("inf")
    next_dropout = loop.time() + dropout_every_s if dropout_every_s else float("inf")
    release_at = float("inf")
    sent = 0
    while True:
        if loop.time() >= next_dropout:
            await asyncio.sleep(dropout_for_s)
            await stream.read()  # what arrived meanwhile is lost, as on a node that was down
            await send(node.restart())
            next_dropout = loop.time() + dropout_every_s
            next_report = loop.time()
        if loop.time() >= next_panic:
            node.press(ReadingKind.PANIC_BUTTON)
            next_panic += panic_every_s
            release_at = loop.time() + 1.0
        if loop.time() >= release_at:
            node.press(ReadingKind.PANIC_BUTTON, active=False)
            release_at = float("inf")
        for frame in node.due_frames():
            await send(frame)
        if loop.time() >= next_report:
            frame = node.telemetry()
            sent += 1
            if garbage_every and sent % garbage_every == 0:
                # Line noise: random bytes, then a delimiter so the gateway can resync.
                frame = bytes(node.rng.randrange(1, 256) for _ in range(17)) + b"\x00" + frame
            await send(frame)
            next_report = loop.time() + node.interval_s
        data = await stream.read()
        for reply in node.receive(data) if data else []:
            await send(reply)


async def simulate(serial_path: str | None, node_id: str, interval_s: float,
                   garbage_every: int = 0, panic_every_s: float = 0.0,
                   dropout_every_s: float = 0.0, dropout_for_s: float = 10.0) -> None:
    """Run one simulated node on a serial device, or on a new pty whose path is printed."""
    stream: ByteStream
    if serial_path is None:
        stream, path = open_pty()
        print(f"simulated node {node_id} on {path}", flush=True)
    else:
        stream = await SerialStream.open(serial_path)
        print(f"simulated node {node_id} on {serial_path}", flush=True)
    try:
        node = SimulatedNode(node_id, interval_s=interval_s)
        await run_node(node, stream, garbage_every=garbage_every, panic_every_s=panic_every_s,
                       dropout_every_s=dropout_every_s, dropout_for_s=dropout_for_s)
    finally:
        stream.close()
