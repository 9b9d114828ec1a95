"""Sensors that publish JSON on the local broker become readings; bad payloads are counted."""

from __future__ import annotations

import json
from pathlib import Path

from edge.sources.mqtt_sensors import MqttSensorSource, extract
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching


def test_extract_follows_paths_and_refuses_non_numbers() -> None:
    body = {"temperature": 21.5, "air": {"co2": 640}, "list": [1, {"x": 2}], "s": "7",
            "flag": True, "nan": float("nan")}
    assert extract(body, "temperature") == 21.5
    assert extract(body, "air.co2") == 640.0
    assert extract(body, "list.1.x") == 2.0
    assert extract(body, "flag") == 1.0
    for missing in ("s", "air", "air.pm25", "list.5", "nan", "temperature.x"):
        assert extract(body, missing) is None


async def test_mqtt_sensor_readings_bad_payloads_and_silence(tmp_path: Path, mosquitto: Mosquitto) -> None:
    prefix = f"t/{tmp_path.name}"
    topic = f"z2m/{tmp_path.name}/climate"
    device = {"id": "climate1", "type": "mqtt", "room_id": "r1", "topic": topic,
              "offline_after_s": 1.5,
              "values": [{"metric": "temperature", "path": "temperature", "unit": "°C"},
                         {"metric": "co2", "path": "air.co2", "unit": "ppm"},
                         {"metric": "battery", "path": "battery_mv", "unit": "V", "scale": 0.001}]}
    path = gateway_config_path(tmp_path, mosquitto, [device])
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path) as gateway:
        bad_payloads = (b"\xff\x00", b"not json", b"[]", json.dumps({"other": 1}).encode(),
                        b"{" + b" " * 70_000 + b"}", b'{"temperature": 1' + b"0" * 400 + b"}",
                        b"[" * 5000 + b"]" * 5000, b'{"temperature": NaN, "battery_mv": "x"}')
        for bad in bad_payloads:
            await mqtt.client.publish(topic, bad)
        await mqtt.client.publish(topic, json.dumps(
            {"temperature": 22.25, "air": {"co2": 815}, "battery_mv": 3012}).encode())
        temp = await mqtt.wait_json(f"{prefix}/reading/climate1/temperature")
        assert temp["value"] == 22.25 and temp["unit"] == "°C" and temp["room_id"] == "r1"
        battery = await mqtt.wait_json(f"{prefix}/reading/climate1/battery")
        assert abs(battery["value"] - 3.012) < 1e-9
        assert (await mqtt.wait_json(f"{prefix}/reading/climate1/co2"))["value"] == 815
        status = f"{prefix}/device/climate1/status"
        await mqtt.wait_json(status, lambda b: b["online"])
        offline = await mqtt.wait_json(status, lambda b: not b["online"], timeout=5)
        assert "nothing for 1.5s" in offline["detail"]
        (source,) = [s for s in gateway.services if isinstance(s, MqttSensorSource)]
        assert source.rejected == len(bad_payloads) and source.readings == 3
        assert gateway.supervisor is not None
        assert [s for s in gateway.supervisor.status() if s["restarts"]] == []
