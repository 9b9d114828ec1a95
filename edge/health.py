"""Track which devices are online, for health reports and the demo summary."""

from __future__ import annotations

from collections.abc import Callable

from edge.bus import Bus, DropPolicy
from edge.events import DeviceStatus


class HealthMonitor:
    """Service: remember which devices are online."""

    name = "health"

    def __init__(self, bus: Bus) -> None:
        self._sub = bus.subscribe("health", (DeviceStatus,), maxsize=1000,
                                  policy=DropPolicy.DROP_OLDEST)
        self.online: dict[str, bool] = {}

    @property
    def devices_online(self) -> int:
        """Number of devices whose latest status is online."""
        return sum(self.online.values())

    def observe(self, event: DeviceStatus) -> None:
        """Update the picture from one status change."""
        self.online[event.device_id] = event.online

    def drain(self) -> None:
        """Apply every queued event now (used when a final report is taken)."""
        while (event := self._sub.get_nowait()) is not None:
            self.observe(event)

    async def run(self, ready: Callable[[], None]) -> None:
        """Follow the bus until cancelled."""
        ready()
        async for event in self._sub:
            self.observe(event)
