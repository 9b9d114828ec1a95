"""A simulated classroom environment sensor with slowly drifting, realistic readings."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from edge.bus import Bus
from edge.clock import Clock
from edge.config_devices import SimulatedSensorConfig
from edge.events import DeviceStatus, Reading
from firmware_bridge.drift import DRIFTS
from firmware_bridge.node_protocol.kinds import KIND_BY_METRIC, READING_KINDS


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
        self._kinds = [KIND_BY_METRIC[m] for m in config.metrics]
        self._values = {kind: DRIFTS[kind].typical for kind in self._kinds}

    def sample(self) -> list[Reading]:
        """Take one reading of every metric (a bounded random walk drawn to typical)."""
        now = self._clock.now()
        out = []
        for kind in self._kinds:
            spec = READING_KINDS[kind]
            self._values[kind] = DRIFTS[kind].next(self._values[kind], self._rng)
            out.append(Reading(self.config.id, spec.metric, round(self._values[kind], spec.decimals),
                               spec.unit, now, self.config.room_id))
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
