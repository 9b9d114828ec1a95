"""Node protocol v1 messages and their payload layouts (all integers big-endian)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import cast

from firmware_bridge.node_protocol.kinds import READING_KINDS, ReadingKind


class PayloadError(ValueError):
    """A payload does not match its message type's layout."""


class MessageType(IntEnum):
    """Wire codes of message types."""

    HELLO = 0x01
    TELEMETRY = 0x02
    EVENT = 0x03
    COMMAND = 0x04
    ACK = 0x05
    NACK = 0x06
    HEARTBEAT = 0x07


class EventCode(IntEnum):
    """What an EVENT reports."""

    BUTTON_PRESSED = 0x01
    ALARM_RAISED = 0x02
    ALARM_CLEARED = 0x03


class CommandAction(IntEnum):
    """What a COMMAND asks a node to do."""

    RELAY = 0x01  # channel, value 0 = off / 1 = on
    LIGHT_LEVEL = 0x02  # channel, value 0..100 %
    IR_CODE = 0x03  # channel (IR emitter), data = raw code bytes
    REPORT_INTERVAL = 0x04  # value = seconds between TELEMETRY frames (1..65535)


class NackReason(IntEnum):
    """Why a node refused a command."""

    UNSUPPORTED = 0x01
    BAD_ARGUMENT = 0x02
    BUSY = 0x03


@dataclass(frozen=True)
class Hello:
    """Sent by a node after (re)start: who it is and what it can do."""

    node_id: str
    firmware: str
    capabilities: frozenset[ReadingKind] = frozenset()
    actions: frozenset[CommandAction] = frozenset()


@dataclass(frozen=True)
class Telemetry:
    """Typed readings, each a (kind, value in the kind's unit) pair."""

    readings: tuple[tuple[ReadingKind, float], ...]


@dataclass(frozen=True)
class Event:
    """Something happened on the node (a button, an alarm raised or cleared)."""

    code: EventCode
    subject: ReadingKind | None = None


@dataclass(frozen=True)
class Command:
    """Gateway to node: do something; answered by ACK or NACK with the same seq."""

    action: CommandAction
    channel: int = 0
    value: int = 0
    data: bytes = b""

    def __post_init__(self) -> None:
        limits = {CommandAction.RELAY: (0, 1), CommandAction.LIGHT_LEVEL: (0, 100),
                  CommandAction.IR_CODE: (0, 0), CommandAction.REPORT_INTERVAL: (1, 65535)}
        low, high = limits[self.action]
        if not low <= self.value <= high:
            raise PayloadError(f"{self.action.name} value {self.value} outside {low}..{high}")
        if not 0 <= self.channel <= 255:
            raise PayloadError(f"channel {self.channel} outside 0..255")
        if (self.action is CommandAction.IR_CODE) != bool(self.data) or len(self.data) > 255:
            raise PayloadError("data (1..255 bytes) goes with IR_CODE and nothing else")


@dataclass(frozen=True)
class Ack:
    """The frame with this seq was accepted (and, for a COMMAND, carried out)."""

    seq: int


@dataclass(frozen=True)
class Nack:
    """The frame with this seq was refused, and why."""

    seq: int
    reason: NackReason


@dataclass(frozen=True)
class Heartbeat:
    """A node is alive; sent when it has nothing else to say."""

    uptime_s: int


Message = Hello | Telemetry | Event | Command | Ack | Nack | Heartbeat


class _Reader:
    """Cursor over a payload that raises PayloadError instead of reading past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(">" + fmt)
        if self.pos + size > len(self.data):
            raise PayloadError("payload ends early")
        (value,) = struct.unpack_from(">" + fmt, self.data, self.pos)
        self.pos += size
        return int(value)

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise PayloadError("payload ends early")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out

    def text(self) -> str:
        try:
            return self.raw(self.take("B")).decode("utf-8")
        except UnicodeDecodeError as err:
            raise PayloadError("text is not UTF-8") from err

    def codes(self) -> list[int]:
        return [self.take("B") for _ in range(self.take("B"))]

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(f"{len(self.data) - self.pos} unexpected bytes after the payload")


_MEMBERS: dict[type[IntEnum], dict[int, IntEnum]] = {}


def _enum(enum: type[IntEnum], code: int) -> IntEnum:
    # A dict lookup: calling the enum class costs several times more, once per reading.
    members = _MEMBERS.get(enum)
    if members is None:
        members = _MEMBERS[enum] = {int(m): m for m in enum}
    member = members.get(code)
    if member is None:
        raise PayloadError(f"unknown {enum.__name__} code 0x{code:02x}")
    return member


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 255:
        raise PayloadError("text longer than 255 bytes")
    return bytes([len(data)]) + data


def pack(message: Message) -> tuple[MessageType, bytes]:
    """Return the type code and payload bytes of a message."""
    if isinstance(message, Hello):
        caps = sorted(message.capabilities)
        acts = sorted(message.actions)
        return MessageType.HELLO, (_text(message.node_id) + _text(message.firmware)
                                   + bytes([len(caps), *caps, len(acts), *acts]))
    if isinstance(message, Telemetry):
        out = bytearray([len(message.readings)])
        for kind, value in message.readings:
            spec = READING_KINDS[kind]
            out += bytes([kind]) + struct.pack(">" + spec.fmt, spec.to_raw(value))
        return MessageType.TELEMETRY, bytes(out)
    if isinstance(message, Event):
        return MessageType.EVENT, bytes([message.code, message.subject or 0])
    if isinstance(message, Command):
        return MessageType.COMMAND, (struct.pack(">BBHB", message.action, message.channel,
                                                 message.value, len(message.data)) + message.data)
    if isinstance(message, Ack):
        return MessageType.ACK, struct.pack(">H", message.seq)
    if isinstance(message, Nack):
        return MessageType.NACK, struct.pack(">HB", message.seq, message.reason)
    return MessageType.HEARTBEAT, struct.pack(">I", message.uptime_s)


def unpack(type_code: MessageType, payload: bytes) -> Message:
    """Parse a payload of the given type; raise PayloadError if it does not fit."""
    r = _Reader(payload)
    message: Message
    if type_code is MessageType.HELLO:
        node_id, firmware = r.text(), r.text()
        caps = frozenset(cast(ReadingKind, _enum(ReadingKind, c)) for c in r.codes())
        acts = frozenset(cast(CommandAction, _enum(CommandAction, c)) for c in r.codes())
        message = Hello(node_id, firmware, caps, acts)
    elif type_code is MessageType.TELEMETRY:
        readings = []
        for _ in range(r.take("B")):
            kind = cast(ReadingKind, _enum(ReadingKind, r.take("B")))
            spec = READING_KINDS[kind]
            readings.append((kind, r.take(spec.fmt) * spec.scale))
        message = Telemetry(tuple(readings))
    elif type_code is MessageType.EVENT:
        code, subject = r.take("B"), r.take("B")
        message = Event(cast(EventCode, _enum(EventCode, code)),
                        cast(ReadingKind, _enum(ReadingKind, subject)) if subject else None)
    elif type_code is MessageType.COMMAND:
        action, channel, value = r.take("B"), r.take("B"), r.take("H")
        data = r.raw(r.take("B"))
        message = Command(cast(CommandAction, _enum(CommandAction, action)), channel, value, data)
    elif type_code is MessageType.ACK:
        message = Ack(r.take("H"))
    elif type_code is MessageType.NACK:
        seq = r.take("H")
        message = Nack(seq, cast(NackReason, _enum(NackReason, r.take("B"))))
    else:
        message = Heartbeat(r.take("I"))
    r.end()
    return message
