"""Publish readings, device status and stored safety events on the local broker."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict

from edge.bus import Bus, DropPolicy
from edge.errors import MqttUnavailable
from edge.events import CameraStats, DeviceStatus, Envelope, LineCrossing, Occupancy, Reading, ZonePresence
from edge.mqtt import MqttLink
from edge.store.database import event_record

log = logging.getLogger(__name__)

Published = Reading | DeviceStatus | Envelope | Occupancy | ZonePresence | LineCrossing | CameraStats
VISION_EVENTS = (Occupancy, ZonePresence, LineCrossing, CameraStats)
BATCH_MAX = 500  # readings per hand-over to the client: one wake-up each, short loop turns


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _number(value: object) -> str:
    """A number as json.dumps writes it."""
    if type(value) is float and math.isfinite(value):
        return repr(value)
    return json.dumps(value)


def render_vision(
    prefix: str, event: Occupancy | ZonePresence | LineCrossing | CameraStats
) -> tuple[str, bytes, int, bool]:
    """Topic, payload, QoS and retain for a vision event: counts and ids only, never pixels."""
    if isinstance(event, Occupancy):
        where = f"{event.camera_id}/{event.zone_id}" if event.zone_id else f"{event.camera_id}"
        body: dict[str, object] = {"room_id": event.room_id, "camera_id": event.camera_id,
                                   "zone_id": event.zone_id, "count": event.count, "ts": event.ts}
        return f"{prefix}/occupancy/{event.room_id}/{where}", _json(body), 1, True
    if isinstance(event, ZonePresence):
        body = {"room_id": event.room_id, "track_id": event.track_id, "present": event.present,
                "entered_at": event.entered_at, "ts": event.ts}
        return f"{prefix}/camera/{event.camera_id}/zone/{event.zone_id}/presence", _json(body), 1, False
    if isinstance(event, LineCrossing):
        body = {"room_id": event.room_id, "in": event.ins, "out": event.outs,
                "total_in": event.total_in, "total_out": event.total_out, "ts": event.ts}
        return f"{prefix}/camera/{event.camera_id}/line/{event.line_id}", _json(body), 1, True
    stats = {k: v for k, v in asdict(event).items() if k != "camera_id"}
    return f"{prefix}/camera/{event.camera_id}/stats", _json(stats), 0, True


class _ReadingTemplate:
    """The fixed parts of one device metric's topic and payload."""

    def __init__(self, prefix: str, reading: Reading) -> None:
        def text(value: str | None) -> str:
            return json.dumps(value, ensure_ascii=False)

        self.topic = f"{prefix}/reading/{reading.device_id}/{reading.metric}"
        self._head = f'{{"metric":{text(reading.metric)},"value":'
        self._middle = f',"unit":{text(reading.unit)},"ts":'
        self._tail = f',"room_id":{text(reading.room_id)}}}'

    def payload(self, value: float, ts: float) -> bytes:
        """The JSON body for one value, byte for byte what _json() gives for the dict."""
        return f"{self._head}{_number(value)}{self._middle}{_number(ts)}{self._tail}".encode()


class LocalPublisher:
    """Service: mirror bus events onto local MQTT topics for classroom consumers.

    Readings (QoS 0) go out in batches and may be dropped oldest-first under overload;
    stored safety events and device status (QoS 1) are never dropped by the bus, jump
    the queue and are each awaited.
    """

    name = "local-publisher"

    def __init__(self, bus: Bus, link: MqttLink, prefix: str) -> None:
        self._sub = bus.subscribe("local-publisher", (Reading, DeviceStatus, Envelope, *VISION_EVENTS),
                                  maxsize=5000, policy=DropPolicy.DROP_OLDEST,
                                  keep=(DeviceStatus, Envelope, Occupancy, ZonePresence, LineCrossing))
        self._link = link
        self._prefix = prefix
        self._templates: dict[tuple[str, str, str, str | None], _ReadingTemplate] = {}
        # The latest status per device, published again on every reconnect: a status that
        # changed while the broker was away (or before it first came) is retained state
        # Home Assistant and the console rely on, not a transient message.
        self.statuses: dict[str, DeviceStatus] = {}
        link.on_connect(self._republish_statuses)
        self.published = 0
        self.dropped_offline = 0

    def render(self, event: Published) -> tuple[str, bytes, int, bool]:
        """Return topic, payload, QoS and retain flag for an event."""
        if isinstance(event, Reading):
            topic, payload = self._reading_message(event)
            return topic, payload, 0, False
        if isinstance(event, VISION_EVENTS):
            return render_vision(self._prefix, event)
        if isinstance(event, DeviceStatus):
            body = {"online": event.online, "ts": event.ts, "room_id": event.room_id,
                    "detail": event.detail}
            return f"{self._prefix}/device/{event.device_id}/status", _json(body), 1, True
        return f"{self._prefix}/event", _json(event_record(event.event, event.seq)), 1, False

    def _reading_message(self, reading: Reading) -> tuple[str, bytes]:
        """Topic and payload of a reading: the render() JSON, from a cached template.

        json.dumps of a five-key dict costs several times the rest of the reading's path.
        """
        key = (reading.device_id, reading.metric, reading.unit, reading.room_id)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = _ReadingTemplate(self._prefix, reading)
        return template.topic, template.payload(reading.value, reading.ts)

    async def run(self, ready: Callable[[], None]) -> None:
        """Publish until cancelled; while the broker is down, count and skip (the store has it)."""
        ready()
        while True:
            await self._sub.wait()
            readings: list[tuple[str, bytes]] = []
            for event in self._sub.take(BATCH_MAX):
                if isinstance(event, Reading):
                    readings.append(self._reading_message(event))
                else:  # kept events come first in a take(), so they go out first
                    await self._publish_one(event)
            if readings:
                try:
                    await self._link.publish_many(readings, qos=0)
                    self.published += len(readings)
                except MqttUnavailable:
                    self.dropped_offline += len(readings)

    async def _republish_statuses(self) -> None:
        for status in list(self.statuses.values()):
            topic, payload, qos, retain = self.render(status)
            await self._link.publish(topic, payload, qos=qos, retain=retain)

    async def _publish_one(self, event: Published) -> None:
        if isinstance(event, DeviceStatus):
            self.statuses[event.device_id] = event
        topic, payload, qos, retain = self.render(event)
        try:
            await self._link.publish(topic, payload, qos=qos, retain=retain)
            self.published += 1
        except MqttUnavailable:
            self.dropped_offline += 1
