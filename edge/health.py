"""Track device presence and reading flow for health reports and the demo summary."""

from __future__ import annotations

from collections.abc import Callable

from edge.bus import Bus, DropPolicy
from edge.events import DeviceStatus, Reading


class HealthMonitor:
    """Service: remember which devices are online and when each last reported."""

    name = "health"

    def __init__(self, bus: Bus) -> None:
        self._sub = bus.subscribe("health", (DeviceStatus, Reading), maxsize=20_000,
                                  policy=DropPolicy.DROP_OLDEST)
        self.online: dict[str, bool] = {}
        self.last_seen: dict[str, float] = {}
        self.readings = 0

    @property
    def devices_online(self) -> int:
        """Number of devices whose latest status is online."""
        return sum(self.online.values())

    def observe(self, event: DeviceStatus | Reading) -> None:
        """Update the picture from one event."""
        if isinstance(event, DeviceStatus):
            self.online[event.device_id] = event.online
        else:
            self.readings += 1
            self.last_seen[event.device_id] = event.ts

    def drain(self) -> None:
        """Apply every queued event now (used when a final report is taken)."""
        while (event := self._sub.get_nowait()) is not None:
            self.observe(event)

    async def run(self, ready: Callable[[], None]) -> None:
        """Follow the bus until cancelled."""
        ready()
        async for event in self._sub:
            self.observe(event)
