"""Typed values that travel on the in-process bus (frozen dataclasses)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How urgent an alert or safety event is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value from a device (a sensor node, a Modbus register, ...)."""

    device_id: str
    metric: str
    value: float
    unit: str
    ts: float
    room_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device came online or went offline."""

    device_id: str
    online: bool
    ts: float
    room_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found in one camera frame (relative coordinates 0..1)."""

    camera_id: str
    label: str
    score: float
    box: tuple[float, float, float, float]
    ts: float
    track_id: int | None = None


@dataclass(frozen=True, slots=True)
class Occupancy:
    """A person count for a camera or a zone, published when it changes."""

    room_id: str
    count: int
    ts: float
    camera_id: str | None = None
    zone_id: str | None = None


@dataclass(frozen=True, slots=True)
class ZonePresence:
    """A tracked person entered or left a camera zone (intrusion and loitering rules use it)."""

    camera_id: str
    room_id: str
    zone_id: str
    track_id: int
    entered_at: float
    ts: float
    present: bool


@dataclass(frozen=True, slots=True)
class ZoneSnapshot:
    """A blurred snapshot was kept when a person entered a zone (alerts attach it by opaque id)."""

    camera_id: str
    room_id: str
    zone_id: str
    snapshot_id: str
    ts: float


@dataclass(frozen=True, slots=True)
class LineCrossing:
    """People crossed a doorway line since the last report; totals since start."""

    camera_id: str
    room_id: str
    line_id: str
    ins: int
    outs: int
    total_in: int
    total_out: int
    ts: float


@dataclass(frozen=True, slots=True)
class CameraStats:
    """A camera's health, reported periodically."""

    camera_id: str
    room_id: str
    online: bool
    ts: float
    input_fps: float = 0.0
    detect_fps: float = 0.0
    inferences: int = 0
    frames: int = 0
    dropped: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    stalls: int = 0
    last_frame_age_s: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """A request to make a device do something."""

    command_id: str
    device_id: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    issued_at: float = 0.0
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """Something that must reach the platform: persisted (and given a seq) before it is told."""

    type: str
    severity: Severity
    occurred_at: float
    source: str
    room_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A SafetyEvent after the store accepted it: now it has its per-gateway seq."""

    event: SafetyEvent
    seq: int
    stored_at: float


BusEvent = (Reading | DeviceStatus | Detection | Occupancy | ZonePresence | ZoneSnapshot | LineCrossing
            | CameraStats | Command | SafetyEvent | Envelope)
