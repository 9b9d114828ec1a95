"""Sensors that already publish JSON on the local broker, ingested as readings."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

from edge.bus import Bus
from edge.clock import Clock
from edge.config_devices import MqttSensorConfig, MqttValueConfig
from edge.events import Reading
from edge.mqtt import MqttLink
from edge.sources.availability import Availability

MAX_PAYLOAD = 64 * 1024


def extract(body: Any, path: str) -> float | None:
    """Follow a dotted key path into a JSON document; None unless it ends at a number or bool."""
    node = body
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    if isinstance(node, bool):
        return float(node)
    if isinstance(node, int | float):
        try:
            value = float(node)  # a JSON integer may be too big for a float
        except OverflowError:
            return None
        return value if math.isfinite(value) else None
    return None


class MqttSensorSource:
    """Service: subscribe to each configured sensor topic and map its JSON to readings."""

    name = "mqtt-sensors"

    def __init__(self, devices: list[MqttSensorConfig], link: MqttLink, bus: Bus, clock: Clock,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._bus = bus
        self._clock = clock
        self._monotonic = monotonic
        self._by_topic = {d.topic: d for d in devices}
        self.availability = {d.id: Availability(d.id, d.room_id, bus, clock) for d in devices}
        self._last_seen: dict[str, float] = {}
        self.readings = 0
        self.rejected = 0
        for topic in self._by_topic:
            link.subscribe(topic, self._on_message, qos=0)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        device = self._by_topic.get(topic)
        if device is None:
            return
        values = self.parse(device, payload)
        self._last_seen[device.id] = self._monotonic()
        self.availability[device.id].seen("publishing")
        now = self._clock.now()
        for spec, value in values:
            self._bus.publish(Reading(device.id, spec.metric, value, spec.unit, now, device.room_id))
            self.readings += 1

    def parse(self, device: MqttSensorConfig, payload: bytes) -> list[tuple[MqttValueConfig, float]]:
        """Return the configured values found in a payload; ValueError (counted) when none are."""
        if len(payload) > MAX_PAYLOAD:
            self.rejected += 1
            raise ValueError(f"{device.id}: payload of {len(payload)} bytes is too large")
        try:
            body = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self.rejected += 1
            raise ValueError(f"{device.id}: payload is not UTF-8 JSON: {err}") from err
        except RecursionError as err:
            self.rejected += 1
            raise ValueError(f"{device.id}: payload is nested too deeply") from err
        found = []
        for spec in device.values:
            raw = extract(body, spec.path)
            value = None if raw is None else raw * spec.scale + spec.offset
            if value is not None and math.isfinite(value):
                found.append((spec, value))
        if not found:
            self.rejected += 1
            raise ValueError(f"{device.id}: none of the configured values is in the payload")
        return found

    async def run(self, ready: Callable[[], None]) -> None:
        """Mark sensors offline when they fall silent, until cancelled."""
        ready()
        started = self._monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = self._monotonic()
            for device in self._by_topic.values():
                last = self._last_seen.get(device.id, started)
                if now - last > device.offline_after_s:
                    self.availability[device.id].lost(f"nothing for {device.offline_after_s:g}s")
