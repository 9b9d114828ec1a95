"""The reading kinds a node can report: one table row each (code, unit, wire format, scale)."""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from enum import IntEnum


class ReadingKind(IntEnum):
    """Wire codes of reading kinds (never renumber: firmware in the field uses them)."""

    TEMPERATURE = 0x01
    HUMIDITY = 0x02
    CO2 = 0x03
    PM25 = 0x04
    ILLUMINANCE = 0x05
    NOISE = 0x06
    MOTION = 0x10
    DOOR_OPEN = 0x11
    SMOKE_ALARM = 0x12
    PANIC_BUTTON = 0x13


@dataclass(frozen=True)
class KindSpec:
    """How one reading kind is named, measured and put on the wire."""

    metric: str
    unit: str
    fmt: str  # struct format of the raw value, big-endian
    scale: float  # value = raw * scale
    binary: bool = False  # 0/1 states rather than measurements

    @functools.cached_property  # read for every reading; log10 each time showed in profiles
    def decimals(self) -> int:
        """Decimal places the wire format can carry (0.01 -> 2)."""
        return max(0, round(-math.log10(self.scale)))

    @property
    def size(self) -> int:
        """Bytes the raw value takes on the wire."""
        return struct.calcsize(">" + self.fmt)

    def to_raw(self, value: float) -> int:
        """Scale a value to its wire integer; ValueError when it does not fit."""
        raw = round(value / self.scale)
        try:
            struct.pack(">" + self.fmt, raw)
        except struct.error as err:
            raise ValueError(f"{self.metric}={value} does not fit the wire format") from err
        return raw


READING_KINDS: dict[ReadingKind, KindSpec] = {
    ReadingKind.TEMPERATURE: KindSpec("temperature", "°C", "h", 0.01),
    ReadingKind.HUMIDITY: KindSpec("humidity", "%", "H", 0.01),
    ReadingKind.CO2: KindSpec("co2", "ppm", "H", 1.0),
    ReadingKind.PM25: KindSpec("pm25", "µg/m³", "H", 0.1),
    ReadingKind.ILLUMINANCE: KindSpec("illuminance", "lx", "I", 1.0),
    ReadingKind.NOISE: KindSpec("noise", "dBA", "H", 0.1),
    ReadingKind.MOTION: KindSpec("motion", "", "B", 1.0, binary=True),
    ReadingKind.DOOR_OPEN: KindSpec("door_open", "", "B", 1.0, binary=True),
    ReadingKind.SMOKE_ALARM: KindSpec("smoke_alarm", "", "B", 1.0, binary=True),
    ReadingKind.PANIC_BUTTON: KindSpec("panic_button", "", "B", 1.0, binary=True),
}

KIND_BY_METRIC: dict[str, ReadingKind] = {spec.metric: kind for kind, spec in READING_KINDS.items()}
