"""Modbus sensors through the whole gateway: RTU bus with a slave that falls silent, and TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware_bridge.modbus.null_modem import NullModem
from firmware_bridge.modbus.simulator import SimulatedModbusSensor
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching

REGISTERS = [
    {"metric": "co2", "address": 0, "function": "input", "unit": "ppm"},
    {"metric": "temperature", "address": 1, "function": "input", "type": "int16", "scale": 0.01,
     "unit": "°C"},
    {"metric": "pm25", "address": 4, "function": "input", "type": "float32", "unit": "µg/m³"},
]


def modbus_device(device_id: str, port: str, unit_id: int, **extra: object) -> dict[str, object]:
    return {"id": device_id, "type": "modbus", "room_id": "r1", "port": port, "unit_id": unit_id,
            "poll_s": 0.2, "timeout_s": 0.2, "retries": 0, "missed_polls": 2,
            "registers": REGISTERS, **extra}


async def test_silent_slave_does_not_stall_the_bus(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sensor = SimulatedModbusSensor(unit_ids=(1, 2), update_interval_s=0.2)
    tcp_sensor = SimulatedModbusSensor(unit_ids=(7,))
    with NullModem() as cable:
        await sensor.serve_rtu(cable.b_path, 19200)
        tcp_port = await tcp_sensor.serve_tcp("::1")
        devices = [modbus_device("co2-a", cable.a_path, 1, baudrate=19200),
                   modbus_device("co2-b", cable.a_path, 2, baudrate=19200),
                   modbus_device("co2-tcp", f"tcp://[::1]:{tcp_port}", 7)]
        prefix = f"t/{tmp_path.name}"
        path = gateway_config_path(tmp_path, mosquitto, devices)
        try:
            async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path):
                for device in ("co2-a", "co2-b", "co2-tcp"):
                    await mqtt.wait_json(f"{prefix}/device/{device}/status", lambda b: b["online"])
                temp = await mqtt.wait_json(f"{prefix}/reading/co2-a/temperature")
                assert temp["unit"] == "°C" and 10 < temp["value"] < 35
                co2 = await mqtt.wait_json(f"{prefix}/reading/co2-tcp/co2")
                assert co2["unit"] == "ppm" and 300 <= co2["value"] <= 5000

                sensor.set_silent(True, unit_id=2)
                offline = await mqtt.wait_json(f"{prefix}/device/co2-b/status",
                                               lambda b: not b["online"], timeout=5)
                assert offline["detail"]
                # While unit 2 stays silent, unit 1 keeps its 0.2 s schedule.
                topic = f"{prefix}/reading/co2-a/co2"
                before = len(mqtt.json_on(topic))
                await asyncio.sleep(2.0)
                polled = len(mqtt.json_on(topic)) - before
                assert polled >= 6, f"only {polled} polls of the healthy slave in 2 s"

                sensor.set_silent(False, unit_id=2)
                await mqtt.wait_json(f"{prefix}/device/co2-b/status",
                                     lambda b: b["online"] and b["ts"] > offline["ts"], timeout=10)
        finally:
            await sensor.stop()
            await tcp_sensor.stop()
