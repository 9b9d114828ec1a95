"""One device's online/offline state: a DeviceStatus on the bus at every change, never repeated."""

from __future__ import annotations

import logging

from edge.bus import Bus
from edge.clock import Clock
from edge.events import DeviceStatus

log = logging.getLogger(__name__)


class Availability:
    """Track whether a device answers; publish only the transitions."""

    def __init__(self, device_id: str, room_id: str, bus: Bus, clock: Clock) -> None:
        self.device_id = device_id
        self.room_id = room_id
        self._bus = bus
        self._clock = clock
        self.online: bool | None = None  # unknown until the first answer or failure
        self.changes = 0

    def seen(self, detail: str = "") -> None:
        """The device answered: online, if it was not already."""
        self._set(True, detail)

    def lost(self, detail: str) -> None:
        """The device stopped answering (or its port went away): offline, if it was not already."""
        self._set(False, detail)

    def _set(self, online: bool, detail: str) -> None:
        if self.online is online:
            return
        if self.online is not None or not online:
            log.log(logging.INFO if online else logging.WARNING, "device %s %s%s", self.device_id,
                    "online" if online else "offline", f" ({detail})" if detail else "")
        self.online = online
        self.changes += 1
        self._bus.publish(DeviceStatus(self.device_id, online, self._clock.now(), self.room_id, detail))
