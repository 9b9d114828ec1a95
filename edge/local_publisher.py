"""Publish readings, device status and stored safety events on the local broker."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from edge.bus import Bus, DropPolicy
from edge.errors import MqttUnavailable
from edge.events import DeviceStatus, Envelope, Reading
from edge.mqtt import MqttLink
from edge.store.database import event_record

log = logging.getLogger(__name__)


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class LocalPublisher:
    """Service: mirror bus events onto local MQTT topics for classroom consumers."""

    name = "local-publisher"

    def __init__(self, bus: Bus, link: MqttLink, prefix: str) -> None:
        self._sub = bus.subscribe("local-publisher", (Reading, DeviceStatus, Envelope),
                                  maxsize=5000, policy=DropPolicy.DROP_OLDEST)
        self._link = link
        self._prefix = prefix
        self.published = 0
        self.dropped_offline = 0

    def render(self, event: Reading | DeviceStatus | Envelope) -> tuple[str, bytes, int, bool]:
        """Return topic, payload, QoS and retain flag for an event."""
        if isinstance(event, Reading):
            body = {"metric": event.metric, "value": event.value, "unit": event.unit,
                    "ts": event.ts, "room_id": event.room_id}
            return f"{self._prefix}/reading/{event.device_id}/{event.metric}", _json(body), 0, False
        if isinstance(event, DeviceStatus):
            body = {"online": event.online, "ts": event.ts, "room_id": event.room_id,
                    "detail": event.detail}
            return f"{self._prefix}/device/{event.device_id}/status", _json(body), 1, True
        return f"{self._prefix}/event", _json(event_record(event.event, event.seq)), 1, False

    async def run(self, ready: Callable[[], None]) -> None:
        """Publish until cancelled; while the broker is down, count and skip (the store has it)."""
        ready()
        async for event in self._sub:
            topic, payload, qos, retain = self.render(event)
            try:
                await self._link.publish(topic, payload, qos=qos, retain=retain)
                self.published += 1
            except MqttUnavailable:
                self.dropped_offline += 1
