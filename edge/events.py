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


BusEvent = Reading | DeviceStatus | Detection | Occupancy | Command | SafetyEvent | Envelope
