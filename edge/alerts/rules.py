"""RuleEngine: bus events and time in, AlertSignals out (pure: no I/O, time always passed in)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from edge.alerts.rules_env import EnvRules
from edge.alerts.rules_people import PeopleRules
from edge.alerts.schedule import RoomSchedule
from edge.alerts.signals import AlertSignal, Emitter, Want
from edge.config_alerts import RulesConfig
from edge.events import (
    CameraStats,
    DeviceStatus,
    Envelope,
    Occupancy,
    Reading,
    SafetyEvent,
    Severity,
    ZonePresence,
)

__all__ = ["AlertSignal", "RuleEngine"]

# Node alarm inputs raised at once as critical alerts: event type -> (alert kind, title).
ALARM_INPUTS = {"panic_button": ("panic", "PANIC BUTTON pressed in {}"),
                "smoke_alarm": ("smoke", "SMOKE ALARM in {}")}
# Conditions of the gateway itself, raised by its own services as safety events.
SYSTEM_ALARMS = {"uplink_outbox_full": ("uplink_backlog_full",
                                        "Uplink backlog full: safety events pile up on the gateway")}
TAMPER_WORDS = {"covered": "covered", "blurred": "blurred", "moved": "turned away"}


class RuleEngine:
    """Feeds events to the rules; every call returns only the signals that changed."""

    def __init__(self, config: RulesConfig, schedules: Mapping[str, RoomSchedule], *,
                 room_names: Mapping[str, str] | None = None, camera_ids: Collection[str] = ()) -> None:
        self.config = config
        self.schedules = dict(schedules)
        self.out = Emitter(config.cooldown_s, room_names)
        self._env = EnvRules(config, self.schedules, self.out)
        self._people = PeopleRules(config, self.schedules, self.out)
        # Cameras report online/offline as DeviceStatus too; this tells their alerts apart.
        self._cameras = set(camera_ids)
        self._offline: dict[str, tuple[float, str | None, str]] = {}  # id -> (since, room, detail)
        self._doors: dict[str, tuple[float, SafetyEvent]] = {}  # key -> (opened at, door_open event)
        self._retired: set[str] = set()  # removed by a reload: stopping them is not an outage

    def reconfigure(self, config: RulesConfig, schedules: Mapping[str, RoomSchedule], *,
                    room_names: Mapping[str, str] | None = None, camera_ids: Collection[str] = (),
                    retired: Collection[str] = ()) -> None:
        """Take new rules and timetables (a config reload), keeping what is known and what is raised.

        retired: devices and cameras taken out of the config; their last "offline" is no alert.
        """
        self.config = config
        self._env.config = self._people.config = config
        self.schedules.clear()  # the same dict the env and people rules read
        self.schedules.update(schedules)
        self.out.cooldown_s = config.cooldown_s
        self.out.room_names = dict(room_names or {})
        self._cameras |= set(camera_ids)
        self._retired |= set(retired)
        for device_id in retired:
            self._offline.pop(device_id, None)

    def observe(self, event: object, now: float) -> list[AlertSignal]:
        """Feed one bus event; unknown or malformed events are ignored."""
        if isinstance(event, Reading):
            self._env.on_reading(event, now)
        elif isinstance(event, ZonePresence):
            self._cameras.add(event.camera_id)
            self._people.on_presence(event, now)
        elif isinstance(event, Occupancy):
            if event.camera_id:
                self._cameras.add(event.camera_id)
            self._people.on_occupancy(event, now)
        elif isinstance(event, CameraStats):
            self._cameras.add(event.camera_id)
        elif isinstance(event, DeviceStatus):
            self._on_status(event, now)
        elif isinstance(event, Envelope) and isinstance(event.event, SafetyEvent):
            # Only stored events (Envelope): the bare SafetyEvent may travel too and must not count twice.
            self._on_safety(event.event, now)
        return self.out.drain()

    def tick(self, now: float) -> list[AlertSignal]:
        """Re-check time-based conditions (held open, loitering, 'for N s', class start/end)."""
        self._env.tick(now)
        self._people.tick(now)
        for device_id in list(self._offline):
            self._check_offline(device_id, now)
        for key in list(self._doors):
            self._check_door(key, now)
        return self.out.drain()

    def resolved_by_person(self, key: str) -> None:
        """The lifecycle layer resolved key by hand: no clear signal, and quiet until it clears once."""
        self.out.resolved_by_person(key)

    @property
    def active(self) -> dict[str, AlertSignal]:
        """Situations currently raised, by key."""
        return dict(self.out.active)

    def _on_status(self, event: DeviceStatus, now: float) -> None:
        if event.device_id in self._retired:
            if not event.online:
                return
            self._retired.discard(event.device_id)  # configured again
        if event.online:
            self._offline.pop(event.device_id, None)
            self.out.set(f"device_offline:{event.device_id}", None, now)
            self.out.set(f"camera_offline:{event.device_id}", None, now)
            return
        self._offline.setdefault(event.device_id, (now, event.room_id, str(event.detail)))
        self._check_offline(event.device_id, now)

    def _check_offline(self, device_id: str, now: float) -> None:
        cfg = self.config.offline
        since, room, detail = self._offline[device_id]
        camera = device_id in self._cameras
        kind = "camera_offline" if camera else "device_offline"
        if not cfg.enabled or now - since < cfg.for_s:
            return
        what = "Camera" if camera else "Device"
        self.out.set(f"{kind}:{device_id}", Want(
            kind, Severity.WARNING, room, f"{what} {device_id} offline ({self.out.room(room)})",
            {"device_id": device_id, "since": since, "reason": detail},
            camera_id=device_id if camera else None), now)

    def _on_safety(self, ev: SafetyEvent, now: float) -> None:
        data = ev.data if isinstance(ev.data, dict) else {}
        kind = ev.type.removesuffix("_cleared") if isinstance(ev.type, str) else ""
        cleared = kind != ev.type
        room = ev.room_id
        name = self.out.room(room)
        source = str(data.get("device_id") or ev.source)
        if kind in ALARM_INPUTS:
            alert_kind, title = ALARM_INPUTS[kind]
            key = f"{alert_kind}:{room}:{source}"
            if cleared:
                # A push button is released a moment after the press: by default a person
                # resolves a panic; a smoke detector's clear means the smoke is gone.
                if kind == "smoke_alarm" or self.config.panic.auto_resolve:
                    self.out.set(key, None, now)
                return
            self.out.rearm(key)
            self.out.set(key, Want(alert_kind, Severity.CRITICAL, room, title.format(name),
                                   {"device_id": source}, ev.event_id), now)
        elif kind in SYSTEM_ALARMS:
            alert_kind, title = SYSTEM_ALARMS[kind]
            key = f"{alert_kind}:{source}"
            self.out.set(key, None if cleared else Want(alert_kind, Severity.CRITICAL, room, title,
                                                        dict(data), ev.event_id), now)
        elif kind == "door_open":
            key = f"door_held_open:{room}:{source}"
            if cleared:
                self._doors.pop(key, None)
                self.out.set(key, None, now)
                return
            at = ev.occurred_at
            opened = min(float(at), now) if isinstance(at, int | float) and math.isfinite(at) else now
            self._doors.setdefault(key, (opened, ev))
            self._check_door(key, now)
        elif kind == "camera_tamper":
            camera = str(data.get("camera_id") or ev.source.removeprefix("camera:"))
            what = str(data.get("kind") or "tamper")
            key = f"camera_tamper:{camera}:{what}"
            if cleared or not self.config.tamper.enabled:
                self.out.set(key, None, now)
                return
            self.out.set(key, Want(
                "camera_tamper", Severity.WARNING, room,
                f"Camera {camera} {TAMPER_WORDS.get(what, 'tampered with')} ({name})",
                {"tamper": what, **({"snapshot_id": data["snapshot_id"]} if "snapshot_id" in data else {})},
                ev.event_id, camera), now)

    def _check_door(self, key: str, now: float) -> None:
        opened, ev = self._doors[key]
        limit = self.config.door_held_open_s
        if limit is None or now - opened < limit:
            return
        room = ev.room_id
        self.out.set(key, Want(
            "door_held_open", Severity.WARNING, room, f"Door held open in {self.out.room(room)}",
            {"opened_at": opened, "open_s": round(now - opened)}, ev.event_id), now)
