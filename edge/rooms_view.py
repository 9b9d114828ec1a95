"""The console's live picture of each room: occupancy, latest readings, device and camera status."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.bus import Bus, DropPolicy
from edge.config import EdgeConfig
from edge.events import CameraStats, DeviceStatus, Occupancy, Reading


@dataclass
class _Room:
    """What is known now about one configured room."""

    cameras: dict[str, int] = field(default_factory=dict)  # whole-view count by camera id
    zones: dict[str, int] = field(default_factory=dict)  # count by "camera_id:zone_id"
    occupancy_ts: float | None = None
    readings: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def _number(value: object) -> float | None:
    """value as a finite float, or None (bools, strings and NaN are not measurements)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class RoomsView:
    """Service: follow the bus and keep the latest picture of every configured room and camera."""

    name = "rooms-view"

    def __init__(self, bus: Bus, config: EdgeConfig) -> None:
        # Statuses and counts change rarely and matter: never pushed out by a flood of readings.
        self._sub = bus.subscribe("rooms-view", (Reading, DeviceStatus, Occupancy, CameraStats),
                                  maxsize=5000, policy=DropPolicy.DROP_OLDEST,
                                  keep=(DeviceStatus, Occupancy))
        self._config = config
        self._rooms = {room.id: _Room() for room in config.rooms}
        self._device_room = {dev.id: dev.room_id for dev in config.devices}
        self._camera_room = {cam.id: cam.room_id for cam in config.cameras if cam.enabled}
        self._status: dict[str, DeviceStatus] = {}
        self._stats: dict[str, CameraStats] = {}
        self.ignored = 0  # events about unknown rooms, devices or cameras, or with bad values

    async def run(self, ready: Callable[[], None]) -> None:
        """Follow the bus until cancelled."""
        ready()
        while True:
            await self._sub.wait()
            for event in self._sub.take():
                self.observe(event)

    def drain(self) -> None:
        """Apply every queued event now (tests and final reports)."""
        for event in self._sub.take():
            self.observe(event)

    def observe(self, event: object) -> None:
        """Update the picture from one event; an event that does not fit is counted and dropped."""
        if isinstance(event, Reading):
            ok = self._reading(event)
        elif isinstance(event, DeviceStatus):
            ok = self._device_status(event)
        elif isinstance(event, Occupancy):
            ok = self._occupancy(event)
        elif isinstance(event, CameraStats):
            ok = self._camera_stats(event)
        else:
            ok = False
        if not ok:
            self.ignored += 1

    def _reading(self, event: Reading) -> bool:
        if not (isinstance(event.device_id, str) and isinstance(event.metric, str)):
            return False
        room_id = self._device_room.get(event.device_id) or event.room_id
        room = self._rooms.get(room_id) if isinstance(room_id, str) else None
        value, ts = _number(event.value), _number(event.ts)
        if room is None or value is None or ts is None:
            return False
        unit = event.unit if isinstance(event.unit, str) else ""
        room.readings[(event.device_id, event.metric)] = {
            "device_id": event.device_id, "metric": event.metric, "value": value, "unit": unit, "ts": ts}
        return True

    def _device_status(self, event: DeviceStatus) -> bool:
        # Cameras report DeviceStatus too; their state is shown from CameraStats instead.
        known = isinstance(event.device_id, str) and event.device_id in self._device_room
        if not known or not isinstance(event.online, bool) or _number(event.ts) is None:
            return False
        self._status[event.device_id] = event
        return True

    def _occupancy(self, event: Occupancy) -> bool:
        camera_id = event.camera_id
        if not isinstance(camera_id, str):
            return False
        # The camera's configured room, not the event's: a count lands where the camera is.
        room = self._rooms.get(self._camera_room.get(camera_id, ""))
        count, ts = _count(event.count), _number(event.ts)
        if room is None or count is None or ts is None:
            return False
        if event.zone_id is None:
            room.cameras[camera_id] = count
        elif isinstance(event.zone_id, str):
            room.zones[f"{camera_id}:{event.zone_id}"] = count
        else:
            return False
        room.occupancy_ts = ts if room.occupancy_ts is None else max(room.occupancy_ts, ts)
        return True

    def _camera_stats(self, event: CameraStats) -> bool:
        known = isinstance(event.camera_id, str) and event.camera_id in self._camera_room
        if not known or not isinstance(event.online, bool) or _number(event.ts) is None:
            return False
        self._stats[event.camera_id] = event
        return True

    def rooms(self) -> list[dict[str, Any]]:
        """Every configured room, in config order, with what is known of it now."""
        out = []
        for room_cfg in self._config.rooms:
            room = self._rooms[room_cfg.id]
            cameras = [cam for cam, room_id in self._camera_room.items() if room_id == room_cfg.id]
            out.append({
                "room_id": room_cfg.id,
                "name": room_cfg.name or room_cfg.id,
                "occupancy": {
                    "count": max(room.cameras.values()) if room.cameras else None,
                    "cameras": dict(room.cameras),
                    "zones": dict(room.zones),
                    "ts": room.occupancy_ts,
                },
                "readings": [dict(room.readings[key]) for key in sorted(room.readings)],
                "devices": [self._device(dev.id, dev.name, dev.type)
                            for dev in self._config.devices if dev.room_id == room_cfg.id],
                "cameras": cameras,
            })
        return out

    def _device(self, device_id: str, name: str, kind: str) -> dict[str, Any]:
        status = self._status.get(device_id)
        return {
            "device_id": device_id, "name": name or device_id, "type": kind,
            "online": None if status is None else status.online,
            "reason": None if status is None or not isinstance(status.detail, str) else status.detail or None,
            "ts": None if status is None else status.ts,
        }

    def cameras(self) -> list[dict[str, Any]]:
        """Every enabled camera, in config order, with its latest health figures."""
        out = []
        for cam in self._config.cameras:
            if not cam.enabled:
                continue
            stats = self._stats.get(cam.id)
            out.append({
                "camera_id": cam.id, "name": cam.name or cam.id, "room_id": cam.room_id,
                "online": None if stats is None else stats.online,
                "input_fps": None if stats is None else _number(stats.input_fps),
                "detect_fps": None if stats is None else _number(stats.detect_fps),
                "last_frame_age_s": None if stats is None else _number(stats.last_frame_age_s),
                "last_error": stats.last_error if stats is not None and isinstance(stats.last_error, str)
                else None,
                "ts": None if stats is None else stats.ts,
            })
        return out
