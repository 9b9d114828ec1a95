"""Slowly drifting, realistic classroom readings, shared by every simulator."""

from __future__ import annotations

import random
from dataclasses import dataclass

from firmware_bridge.node_protocol.kinds import ReadingKind


@dataclass(frozen=True)
class Drift:
    """Where a simulated measurement sits and how fast it wanders."""

    typical: float
    low: float
    high: float
    step: float

    def next(self, value: float, rng: random.Random) -> float:
        """Return the next value: a bounded random walk drawn back towards typical."""
        pull = (self.typical - value) * 0.02
        return min(self.high, max(self.low, value + pull + rng.gauss(0, self.step)))


# Values an occupied classroom shows.
DRIFTS: dict[ReadingKind, Drift] = {
    ReadingKind.TEMPERATURE: Drift(22.0, 16.0, 30.0, 0.05),
    ReadingKind.HUMIDITY: Drift(45.0, 20.0, 80.0, 0.3),
    ReadingKind.CO2: Drift(700.0, 400.0, 2500.0, 15.0),
    ReadingKind.PM25: Drift(12.0, 1.0, 150.0, 0.8),
    ReadingKind.ILLUMINANCE: Drift(420.0, 50.0, 1200.0, 10.0),
    ReadingKind.NOISE: Drift(48.0, 30.0, 90.0, 1.5),
}
