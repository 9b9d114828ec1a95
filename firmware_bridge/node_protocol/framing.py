"""Frames: header + payload + CRC-16, COBS-encoded and ended by a 0x00 byte. Sans-I/O."""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from cobs import cobs

from firmware_bridge.node_protocol.messages import Message, MessageType, PayloadError, pack, unpack

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">BBHH")  # version, type, seq, payload length
CRC = struct.Struct(">H")
MAX_PAYLOAD = 512
MAX_PACKET = HEADER.size + MAX_PAYLOAD + CRC.size
# COBS adds one byte per started 254 bytes; anything longer cannot be one of our frames.
MAX_ENCODED = MAX_PACKET + MAX_PACKET // 254 + 1
DELIMITER = b"\x00"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: the sender's sequence number and the message."""

    seq: int
    message: Message


def encode_frame(message: Message, seq: int) -> bytes:
    """Return the bytes to write for one message, delimiter included."""
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq {seq} outside 0..65535")
    type_code, payload = pack(message)
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    packet = HEADER.pack(PROTOCOL_VERSION, type_code, seq, len(payload)) + payload
    packet += CRC.pack(crc16(packet))
    return bytes(cobs.encode(packet)) + DELIMITER


@dataclass
class DecoderStats:
    """What the decoder saw: good frames and every kind of rejected input."""

    frames: int = 0
    bytes_in: int = 0
    bad_cobs: int = 0
    bad_crc: int = 0
    bad_length: int = 0
    bad_version: int = 0
    unknown_type: int = 0
    bad_payload: int = 0
    oversize: int = 0

    @property
    def rejected(self) -> int:
        """Frames dropped for any reason."""
        return (self.bad_cobs + self.bad_crc + self.bad_length + self.bad_version
                + self.unknown_type + self.bad_payload + self.oversize)


class FrameDecoder:
    """Turn a byte stream into frames; resynchronise on the next 0x00 after garbage."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False  # inside an oversize run: skip to the next delimiter
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> list[Frame]:
        """Consume bytes; return the frames they complete (bad ones are counted, not raised)."""
        self.stats.bytes_in += len(data)
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        start = 0
        # Walk the frames by index and trim the buffer once: deleting per frame would copy
        # the rest of a large read again for every frame in it.
        while (end := buffer.find(DELIMITER, start)) >= 0:
            chunk = bytes(buffer[start:end])
            start = end + 1
            if self._discarding:
                self._discarding = False
            elif chunk:  # an empty chunk is just a repeated delimiter (line idle)
                frame = self._decode(chunk)
                if frame is not None:
                    frames.append(frame)
        del buffer[:start]
        if len(buffer) > MAX_ENCODED:
            # Bounded memory: noise without delimiters is dropped, not accumulated.
            self.stats.oversize += 1
            self._buffer.clear()
            self._discarding = True
        return frames

    def _decode(self, chunk: bytes) -> Frame | None:
        if len(chunk) > MAX_ENCODED:
            self.stats.oversize += 1
            return None
        try:
            packet = cobs.decode(chunk)
        except cobs.DecodeError:
            self.stats.bad_cobs += 1
            return None
        if len(packet) < HEADER.size + CRC.size:
            self.stats.bad_length += 1
            return None
        body, (crc,) = packet[:-CRC.size], CRC.unpack(packet[-CRC.size:])
        if crc16(body) != crc:
            self.stats.bad_crc += 1
            return None
        version, type_code, seq, length = HEADER.unpack_from(body)
        payload = body[HEADER.size:]
        if version != PROTOCOL_VERSION:
            self.stats.bad_version += 1
            return None
        if length != len(payload) or length > MAX_PAYLOAD:
            self.stats.bad_length += 1
            return None
        try:
            message_type = MessageType(type_code)
        except ValueError:
            self.stats.unknown_type += 1
            return None
        try:
            message = unpack(message_type, payload)
        except PayloadError:
            self.stats.bad_payload += 1
            return None
        self.stats.frames += 1
        return Frame(seq, message)
