"""Home Assistant discovery: one retained config per device metric, again when HA restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.bus import Bus
from edge.events import Reading
from edge.ha_discovery import HomeAssistantDiscovery
from edge.mqtt import MqttLink, StatusTopic
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching


def test_config_for_sensor_and_binary_sensor() -> None:
    link = MqttLink("x", lambda: None, "c", StatusTopic("s", lambda: b"", b""))  # type: ignore[arg-type,return-value]
    discovery = HomeAssistantDiscovery(Bus(), link, "edge/gw.1", "homeassistant", "gw.1",
                                       {"n.1": ("Node one", "node", "Room 1")})
    topic, config = discovery.config_for(Reading("n.1", "co2", 700, "ppm", 1.0, "r1"))
    assert topic == "homeassistant/sensor/gw_1_n_1/co2/config"
    assert config["unit_of_measurement"] == "ppm" and config["device_class"] == "carbon_dioxide"
    assert config["state_topic"] == "edge/gw.1/reading/n.1/co2"
    assert config["device"]["name"] == "Node one" and config["device"]["suggested_area"] == "Room 1"
    topic, config = discovery.config_for(Reading("n.1", "door_open", 1, "", 1.0, "r1"))
    assert topic == "homeassistant/binary_sensor/gw_1_n_1/door_open/config"
    assert config["device_class"] == "door" and "ON" in config["value_template"]
    assert "unit_of_measurement" not in config


async def test_configs_are_retained_and_sent_again_when_ha_restarts(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    discovery_prefix = f"ha-{tmp_path.name}"
    path = gateway_config_path(
        tmp_path, mosquitto,
        [{"id": "sim1", "type": "simulated", "room_id": "r1", "interval_s": 0.2,
          "metrics": ["temperature", "co2"]}],
        local={"discovery": {"prefix": discovery_prefix}})
    topic = f"{discovery_prefix}/sensor/gw-test_sim1/co2/config"
    async with running_gateway(path), watching(mosquitto, f"{discovery_prefix}/#") as mqtt:
        await mqtt.wait_json(topic)
        await asyncio.sleep(0.5)
        count = len(mqtt.json_on(topic))
        assert count == 1  # announced once, not with every reading
        await mqtt.client.publish(f"{discovery_prefix}/status", b"online")
        async with asyncio.timeout(5):
            while len(mqtt.json_on(topic)) == count:
                await asyncio.sleep(0.05)
    # A subscriber that comes later still finds it (retained).
    async with watching(mosquitto, f"{discovery_prefix}/sensor/#") as late:
        await late.wait_json(topic)
        assert any(retained for t, _, retained in late.messages if t == topic)
        await late.client.publish(topic, b"", retain=True)  # leave the shared broker clean
