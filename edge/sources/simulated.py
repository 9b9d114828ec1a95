"""A simulated classroom environment sensor with slowly drifting, realistic readings."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from edge.bus import Bus
from edge.clock import Clock
from edge.config import SimulatedSensorConfig
from edge.events import DeviceStatus, Reading


@dataclass(frozen=True)
class MetricModel:
    """How one simulated metric behaves: unit, typical value, range and step size."""

    unit: str
    typical: float
    low: float
    high: float
    step: float
    decimals: int


# One row per metric kind, not one class each: values an occupied classroom shows.
METRICS: dict[str, MetricModel] = {
    "temperature": MetricModel("°C", 22.0, 16.0, 30.0, 0.05, 2),
    "humidity": MetricModel("%", 45.0, 20.0, 80.0, 0.3, 1),
    "co2": MetricModel("ppm", 700.0, 400.0, 2500.0, 15.0, 0),
    "pm25": MetricModel("µg/m³", 12.0, 1.0, 150.0, 0.8, 1),
    "illuminance": MetricModel("lx", 420.0, 50.0, 1200.0, 10.0, 0),
    "noise": MetricModel("dBA", 48.0, 30.0, 90.0, 1.5, 1),
}


class SimulatedSensor:
    """Service: publish readings for the configured metrics every interval."""

    def __init__(
        self, config: SimulatedSensorConfig, bus: Bus, clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.name = f"sim:{config.id}"
        self._bus = bus
        self._clock = clock
        self._rng = rng or random.Random(config.id)
        self._values = {m: METRICS[m].typical for m in config.metrics}

    def sample(self) -> list[Reading]:
        """Take one reading of every metric (a bounded random walk drawn to typical)."""
        now = self._clock.now()
        out = []
        for metric in self.config.metrics:
            model = METRICS[metric]
            value = self._values[metric]
            pull = (model.typical - value) * 0.02
            value = min(model.high, max(model.low, value + pull + self._rng.gauss(0, model.step)))
            self._values[metric] = value
            out.append(Reading(self.config.id, metric, round(value, model.decimals), model.unit,
                               now, self.config.room_id))
        return out

    async def run(self, ready: Callable[[], None]) -> None:
        """Report online, then readings every interval; offline when stopped."""
        self._bus.publish(DeviceStatus(self.config.id, True, self._clock.now(), self.config.room_id))
        ready()
        try:
            while True:
                for reading in self.sample():
                    self._bus.publish(reading)
                await asyncio.sleep(self.config.interval_s)
        finally:
            self._bus.publish(
                DeviceStatus(self.config.id, False, self._clock.now(), self.config.room_id,
                             "simulator stopped")
            )
