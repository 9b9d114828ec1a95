"""Node protocol v1 codec: round trips, every rejection counted, resync, bounded memory."""

from __future__ import annotations

import struct

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.node_protocol import (
    MAX_PAYLOAD,
    Ack,
    Command,
    CommandAction,
    Event,
    EventCode,
    FrameDecoder,
    Heartbeat,
    Hello,
    Message,
    Nack,
    NackReason,
    ReadingKind,
    Telemetry,
    encode_frame,
)
from firmware_bridge.node_protocol.framing import CRC, HEADER, MAX_ENCODED, crc16
from firmware_bridge.node_protocol.messages import PayloadError

EXAMPLES: list[Message] = [
    Hello("node-r101-a", "1.4.2", frozenset({ReadingKind.TEMPERATURE, ReadingKind.CO2}),
          frozenset({CommandAction.RELAY})),
    Telemetry(((ReadingKind.TEMPERATURE, -3.25), (ReadingKind.HUMIDITY, 45.5),
               (ReadingKind.CO2, 812.0), (ReadingKind.PM25, 12.3), (ReadingKind.ILLUMINANCE, 420.0),
               (ReadingKind.NOISE, 48.7), (ReadingKind.MOTION, 1.0), (ReadingKind.DOOR_OPEN, 0.0),
               (ReadingKind.SMOKE_ALARM, 0.0), (ReadingKind.PANIC_BUTTON, 1.0))),
    Event(EventCode.ALARM_RAISED, ReadingKind.SMOKE_ALARM),
    Event(EventCode.BUTTON_PRESSED),
    Command(CommandAction.RELAY, channel=2, value=1),
    Command(CommandAction.LIGHT_LEVEL, channel=0, value=75),
    Command(CommandAction.IR_CODE, channel=1, data=bytes(range(40))),
    Command(CommandAction.REPORT_INTERVAL, value=30),
    Ack(65535),
    Nack(7, NackReason.BAD_ARGUMENT),
    Heartbeat(86_400),
]


def approx_equal(a: Message, b: Message) -> bool:
    if isinstance(a, Telemetry) and isinstance(b, Telemetry):
        return all(ka == kb and abs(va - vb) < 1e-6
                   for (ka, va), (kb, vb) in zip(a.readings, b.readings, strict=True))
    return a == b


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips(message: Message) -> None:
    wire = encode_frame(message, seq=1234)
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    (frame,) = FrameDecoder().feed(wire)
    assert frame.seq == 1234 and approx_equal(frame.message, message)


def test_documented_example_bytes() -> None:
    # The worked example in docs/node-protocol.md; firmware authors test against it.
    wire = encode_frame(Telemetry(((ReadingKind.TEMPERATURE, 21.5), (ReadingKind.CO2, 812.0))), 7)
    # packet 01 02 0007 0007 | 02 01 0866 03 032c | crc 00af, then COBS blocks and 00.
    assert wire.hex(" ") == "03 01 02 02 07 09 07 02 01 08 66 03 03 2c 02 af 00"
    assert crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value


def bitwise_crc16(data: bytes) -> int:
    """The textbook shift-register CRC-16/CCITT-FALSE, to check the fast one against."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


@given(st.binary(max_size=600))
def test_crc_matches_the_reference_implementation(data: bytes) -> None:
    assert crc16(data) == bitwise_crc16(data)


def test_stream_fed_one_byte_at_a_time() -> None:
    stream = b"".join(encode_frame(m, i) for i, m in enumerate(EXAMPLES))
    decoder = FrameDecoder()
    frames = [f for b in stream for f in decoder.feed(bytes([b]))]
    assert [f.seq for f in frames] == list(range(len(EXAMPLES)))
    assert decoder.stats.rejected == 0


def packet(version: int = 1, type_code: int = 7, seq: int = 1, payload: bytes = b"\0\0\0\1",
           length: int | None = None, crc_delta: int = 0) -> bytes:
    body = HEADER.pack(version, type_code, seq, len(payload) if length is None else length) + payload
    return cobs.encode(body + CRC.pack((crc16(body) + crc_delta) & 0xFFFF)) + b"\x00"


@pytest.mark.parametrize(
    ("wire", "counter"),
    [
        (packet(crc_delta=1), "bad_crc"),
        (packet(version=2), "bad_version"),
        (packet(length=9), "bad_length"),
        (packet(type_code=0x7F), "unknown_type"),
        (packet(payload=b"\0\0"), "bad_payload"),  # heartbeat needs 4 bytes
        (packet(type_code=2, payload=b"\x01\x99\0\0"), "bad_payload"),  # unknown reading kind
        (packet(type_code=1, payload=b"\x02\xff\xfe\x00\x00\x00"), "bad_payload"),  # not UTF-8
        (packet(type_code=5, payload=b"\0\1\2"), "bad_payload"),  # trailing byte
        (b"\x05\x01\x00", "bad_cobs"),
        (cobs.encode(b"\1\2\3") + b"\x00", "bad_length"),
    ],
)
def test_bad_frames_are_counted_and_the_next_good_one_decodes(wire: bytes, counter: str) -> None:
    decoder = FrameDecoder()
    good = encode_frame(Heartbeat(5), 9)
    frames = decoder.feed(wire + good)
    assert [f.seq for f in frames] == [9]
    assert getattr(decoder.stats, counter) == 1 and decoder.stats.rejected == 1


def test_noise_without_delimiters_is_bounded_and_recovers() -> None:
    decoder = FrameDecoder()
    for _ in range(20):
        decoder.feed(b"\xaa" * 1000)
    assert len(decoder._buffer) <= MAX_ENCODED
    assert decoder.stats.oversize >= 1
    # The tail of the noise up to the next delimiter is skipped, then frames decode again.
    frames = decoder.feed(b"\xaa\xaa\x00" + encode_frame(Ack(3), 4))
    assert [f.message for f in frames] == [Ack(3)]


def test_encoder_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError):
        encode_frame(Heartbeat(1), seq=70_000)
    with pytest.raises(ValueError, match="does not fit"):
        encode_frame(Telemetry(((ReadingKind.CO2, 70_000.0),)), 1)
    with pytest.raises(PayloadError):
        Command(CommandAction.LIGHT_LEVEL, value=101)
    with pytest.raises(PayloadError):
        Command(CommandAction.RELAY, value=1, data=b"x")
    big = Telemetry(tuple((ReadingKind.ILLUMINANCE, 1.0) for _ in range(110)))
    with pytest.raises(PayloadError, match="exceeds"):
        encode_frame(big, 1)
    assert len(encode_frame(Telemetry(tuple((ReadingKind.ILLUMINANCE, 1.0) for _ in range(100))), 1)
               ) < MAX_ENCODED
    assert MAX_PAYLOAD == 512


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes_never_raise_and_stay_bounded(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            # Whatever survives the CRC must re-encode to a valid frame.
            assert FrameDecoder().feed(encode_frame(frame.message, frame.seq))
    assert len(decoder._buffer) <= MAX_ENCODED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(EXAMPLES), min_size=1, max_size=8),
       st.binary(min_size=1, max_size=50), st.integers(min_value=0, max_value=7))
def test_garbage_between_frames_loses_at_most_the_frame_it_touches(
    messages: list[Message], garbage: bytes, where: int
) -> None:
    frames = [encode_frame(m, i) for i, m in enumerate(messages)]
    where = min(where, len(frames))
    stream = b"".join(frames[:where]) + garbage + b"\x00" + b"".join(frames[where:])
    decoded = FrameDecoder().feed(stream)
    assert [f.seq for f in decoded] == list(range(len(messages)))


def test_header_layout_is_big_endian() -> None:
    assert HEADER.pack(1, 2, 0x0102, 3) == b"\x01\x02\x01\x02\x00\x03"
    assert struct.calcsize(">BBHH") == HEADER.size == 6
