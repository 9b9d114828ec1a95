"""Node protocol v1: COBS-framed, CRC-checked messages between the gateway and sensor nodes."""

from firmware_bridge.node_protocol.event_window import EVENT_WINDOW, EventWindow
from firmware_bridge.node_protocol.framing import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    DecoderStats,
    Frame,
    FrameDecoder,
    encode_frame,
)
from firmware_bridge.node_protocol.kinds import READING_KINDS, ReadingKind
from firmware_bridge.node_protocol.messages import (
    Ack,
    Command,
    CommandAction,
    Event,
    EventCode,
    Heartbeat,
    Hello,
    Message,
    Nack,
    NackReason,
    Telemetry,
)

__all__ = [
    "EVENT_WINDOW", "MAX_PAYLOAD", "PROTOCOL_VERSION", "READING_KINDS", "Ack", "Command", "CommandAction",
    "DecoderStats", "Event", "EventCode", "EventWindow", "Frame", "FrameDecoder", "Heartbeat", "Hello",
    "Message", "Nack", "NackReason", "ReadingKind", "Telemetry", "encode_frame",
]
