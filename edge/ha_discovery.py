"""Home Assistant MQTT discovery: a retained config per device metric, so HA finds our devices."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from edge.bus import Bus, DropPolicy
from edge.errors import MqttUnavailable
from edge.events import Reading
from edge.mqtt import MqttLink

# metric -> (HA component, device_class); anything else is a plain sensor.
METRIC_CLASSES: dict[str, tuple[str, str | None]] = {
    "temperature": ("sensor", "temperature"),
    "humidity": ("sensor", "humidity"),
    "co2": ("sensor", "carbon_dioxide"),
    "pm25": ("sensor", "pm25"),
    "illuminance": ("sensor", "illuminance"),
    "noise": ("sensor", "sound_pressure"),
    "lamp_hours": ("sensor", "duration"),
    "motion": ("binary_sensor", "motion"),
    "door_open": ("binary_sensor", "door"),
    "smoke_alarm": ("binary_sensor", "smoke"),
    "panic_button": ("binary_sensor", "safety"),
    "power": ("binary_sensor", "power"),
}


def _object_id(text: str) -> str:
    # HA allows [a-zA-Z0-9_-] in node and object ids; our ids may also hold '.'.
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


class HomeAssistantDiscovery:
    """Service: announce each (device, metric) once as it first appears; again when HA restarts."""

    name = "ha-discovery"

    def __init__(self, bus: Bus, link: MqttLink, prefix: str, discovery_prefix: str, gateway_id: str,
                 device_info: Mapping[str, tuple[str, str, str]]) -> None:
        """device_info maps device id -> (display name, device type, room name)."""
        self._sub = bus.subscribe("ha-discovery", (Reading,), maxsize=2000,
                                  policy=DropPolicy.DROP_OLDEST)
        self._link = link
        self._prefix = prefix
        self._discovery = discovery_prefix.rstrip("/")
        self._gateway = gateway_id
        self._info = device_info
        # (device, metric) -> (topic, config) of every config the broker accepted.
        self.announced: dict[tuple[str, str], tuple[str, bytes]] = {}
        link.subscribe(f"{self._discovery}/status", self._on_ha_status, qos=1)

    def config_for(self, reading: Reading) -> tuple[str, dict[str, Any]]:
        """Return the discovery topic and config payload for one device metric."""
        component, device_class = METRIC_CLASSES.get(reading.metric, ("sensor", None))
        node = _object_id(f"{self._gateway}_{reading.device_id}")
        name, device_type, room = self._info.get(reading.device_id, (reading.device_id, "", ""))
        config: dict[str, Any] = {
            "name": reading.metric.replace("_", " ").capitalize(),
            "unique_id": f"{node}_{_object_id(reading.metric)}",
            "state_topic": f"{self._prefix}/reading/{reading.device_id}/{reading.metric}",
            "availability_topic": f"{self._prefix}/device/{reading.device_id}/status",
            "availability_template": "{{ 'online' if value_json.online else 'offline' }}",
            "device": {"identifiers": [node], "name": name, "manufacturer": "campus-edge",
                       "model": device_type, "suggested_area": room,
                       "via_device": _object_id(self._gateway)},
        }
        if component == "binary_sensor":
            config["value_template"] = "{{ 'ON' if value_json.value else 'OFF' }}"
        else:
            config["value_template"] = "{{ value_json.value }}"
            config["state_class"] = "measurement"
            if reading.unit:
                config["unit_of_measurement"] = "h" if reading.metric == "lamp_hours" else reading.unit
        if device_class:
            config["device_class"] = device_class
        topic = f"{self._discovery}/{component}/{node}/{_object_id(reading.metric)}/config"
        return topic, config

    async def _on_ha_status(self, topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":  # HA restarted: it may have lost what it knew
            for config_topic, body in list(self.announced.values()):
                await self._publish(config_topic, body)

    async def _publish(self, topic: str, body: bytes) -> bool:
        try:
            await self._link.publish(topic, body, qos=1, retain=True)
            return True
        except MqttUnavailable:
            return False

    async def run(self, ready: Callable[[], None]) -> None:
        """Announce new device metrics until cancelled."""
        ready()
        async for reading in self._sub:
            key = (reading.device_id, reading.metric)
            if key in self.announced:  # the common case, and cheap: every reading passes here
                continue
            topic, config = self.config_for(reading)
            body = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
            if await self._publish(topic, body):
                self.announced[key] = (topic, body)
