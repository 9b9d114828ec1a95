"""Alerts service: bus events -> rules -> one alert per situation; every change stored first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from edge.alerts.lifecycle import Alert, AlertBook, Transition
from edge.alerts.rules import RuleEngine
from edge.alerts.schedule import RoomSchedule
from edge.bus import Bus, DropPolicy
from edge.clock import Clock
from edge.config import EdgeConfig
from edge.events import (
    CameraStats,
    DeviceStatus,
    Envelope,
    Occupancy,
    Reading,
    SafetyEvent,
    ZonePresence,
    ZoneSnapshot,
)

log = logging.getLogger(__name__)

RecordEvent = Callable[[SafetyEvent], Awaitable[Envelope]]
History = Callable[[], Awaitable[list[SafetyEvent]]]
ALERT_EVENT = "alert"
TICK_S = 1.0  # time-based rules (held open, loitering, "for N s") and escalation


def alert_event(alert: Alert, transition: Transition) -> SafetyEvent:
    """The stored, published form of one alert transition (type "alert")."""
    data: dict[str, Any] = {
        "alert_id": alert.alert_id, "action": transition.action, "actor": transition.actor,
        "note": transition.note, "kind": alert.kind, "key": alert.key, "title": alert.title,
        "state": alert.state.value, "escalated": alert.escalated, "camera_id": alert.camera_id,
        "detail": dict(alert.detail),
    }
    return SafetyEvent(ALERT_EVENT, alert.severity, transition.ts, "alerts", alert.room_id, data)


class AlertService:
    """Service: run the rules on bus events and keep the alert book; record every transition."""

    name = "alerts"

    def __init__(self, config: EdgeConfig, bus: Bus, clock: Clock, record_event: RecordEvent,
                 history: History | None = None) -> None:
        schedules = {room.id: RoomSchedule(room.schedule) for room in config.rooms if room.schedule}
        self.engine = RuleEngine(config.alerts.rules, schedules,
                                 room_names={room.id: room.name or room.id for room in config.rooms},
                                 camera_ids=[camera.id for camera in config.cameras])
        self.book = AlertBook(config.alerts.escalate_after_s)
        self._clock = clock
        self._record_event = record_event
        self._history = history
        # Safety events, status changes and presence are never dropped; readings may be.
        self._sub = bus.subscribe("alerts", (Reading, DeviceStatus, Occupancy, ZonePresence, ZoneSnapshot,
                                             CameraStats, Envelope), maxsize=10000,
                                  policy=DropPolicy.DROP_OLDEST,
                                  keep=(Envelope, DeviceStatus, ZonePresence, ZoneSnapshot, Occupancy))
        self.raised = 0

    def reconfigure(self, config: EdgeConfig, retired: Collection[str] = ()) -> None:
        """Apply new alert rules, room timetables and escalation delay live; open alerts stay open.

        retired names devices and cameras the new config dropped (their stop is not an outage).
        """
        schedules = {room.id: RoomSchedule(room.schedule) for room in config.rooms if room.schedule}
        self.engine.reconfigure(config.alerts.rules, schedules,
                                room_names={room.id: room.name or room.id for room in config.rooms},
                                camera_ids=[camera.id for camera in config.cameras], retired=retired)
        self.book.escalate_after_s = config.alerts.escalate_after_s

    async def run(self, ready: Callable[[], None]) -> None:
        """Follow the bus until cancelled, re-checking time-based rules every second."""
        if self._history is not None:
            # Alerts open before a restart stay open (with who acknowledged them); a situation
            # still going on is recognised by its key and not raised twice.
            for event in await self._history():
                self.book.replay(event.data, event.severity, event.room_id, event.occurred_at)
            self.book.forget_resolved()
        ready()
        next_tick = 0.0
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (a clean stop).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._sub.wait()
            now = self._clock.now()
            signals = []
            for event in self._sub.take(500):
                if isinstance(event, Envelope) and event.event.type == ALERT_EVENT:
                    continue  # our own transitions come back on the bus
                if isinstance(event, ZoneSnapshot):
                    # Before this batch's signals: an alert raised just after takes it along.
                    for transition in self.book.zone_snapshot(event.camera_id, event.zone_id,
                                                              event.snapshot_id, event.ts, now):
                        await self._record(transition)
                    continue
                signals += self.engine.observe(event, now)
            # Time-based checks once a second, not on every wake: a busy bus (our own
            # transitions come back on it) must not turn them into a busy loop.
            ticking = time.monotonic() >= next_tick
            if ticking:
                next_tick = time.monotonic() + TICK_S
                signals += self.engine.tick(now)
            for signal in signals:
                for transition in self.book.signal(signal, now):
                    await self._record(transition)
            if ticking:
                for transition in self.book.tick(now):
                    await self._record(transition)

    async def acknowledge(self, alert_id: str, actor: str, note: str) -> Transition:
        """A person acknowledges an alert (AlertActionRefused when not allowed)."""
        transition = self.book.acknowledge(alert_id, actor, note, self._clock.now())
        await self._record(transition)
        return transition

    async def resolve(self, alert_id: str, actor: str, note: str) -> Transition:
        """A person resolves an alert; the rules will not raise it again until it cleared once."""
        transition = self.book.resolve(alert_id, actor, note, self._clock.now())
        alert = self.book.get(alert_id)
        if alert is not None:
            self.engine.resolved_by_person(alert.key)
        await self._record(transition)
        return transition

    async def _record(self, transition: Transition) -> None:
        alert = self.book.get(transition.alert_id)
        assert alert is not None, "a transition always names an alert the book holds"
        if transition.action == "raised":
            self.raised += 1
        log.log(logging.WARNING if transition.action in ("raised", "escalated") else logging.INFO,
                "alert %s %s: %s (%s)", alert.alert_id[:8], transition.action, alert.title, transition.actor)
        await self._record_event(alert_event(alert, transition))
        if transition.action == "resolved":  # the only change that adds a resolved alert
            self.book.forget_resolved()
