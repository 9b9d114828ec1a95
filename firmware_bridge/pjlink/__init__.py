"""PJLink class 1 projectors over TCP: wire format, client and a simulated projector."""

from firmware_bridge.pjlink.client import PjlinkClient, PjlinkStats, ProjectorStatus
from firmware_bridge.pjlink.protocol import (
    PORT,
    auth_digest,
    encode_command,
    parse_errors,
    parse_lamps,
    parse_power,
    parse_reply,
)
from firmware_bridge.pjlink.simulator import SimulatedProjector

__all__ = [
    "PORT",
    "PjlinkClient",
    "PjlinkStats",
    "ProjectorStatus",
    "SimulatedProjector",
    "auth_digest",
    "encode_command",
    "parse_errors",
    "parse_lamps",
    "parse_power",
    "parse_reply",
]
