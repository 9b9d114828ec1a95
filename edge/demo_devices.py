"""The simulated classroom behind `edge demo`: nodes on ptys, a Modbus sensor, a projector."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path

from edge.config import EdgeConfig
from edge.config_devices import ModbusDeviceConfig, NodeDeviceConfig, PjlinkDeviceConfig
from edge.config_vision import CameraConfig
from firmware_bridge.modbus.null_modem import NullModem
from firmware_bridge.modbus.simulator import SimulatedModbusSensor
from firmware_bridge.pjlink.simulator import SimulatedProjector
from firmware_bridge.simulator import SimulatedNode, run_node
from firmware_bridge.streams import open_pty

NODE_INTERVAL_S = 1.0
PANIC_NODE = "node-r101"
PANIC_EVERY_S = 8.0  # the demo's panic button: pressed 8 s after start, then every 8 s
DEMO_CLIP_URL = "file:demo-clip"
DEMO_CLIP = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "vtest-cut.mp4"

log = logging.getLogger(__name__)


def demo_cameras(config: EdgeConfig) -> list[CameraConfig]:
    """The demo's cameras with the placeholder URL pointing at the committed real clip."""
    if not DEMO_CLIP.is_file():
        log.warning("demo clip %s is missing (not a source checkout?): the demo runs without cameras",
                    DEMO_CLIP)
        return []
    return [cam.model_copy(update={"url": f"file:{DEMO_CLIP}"}) if cam.url == DEMO_CLIP_URL else cam
            for cam in config.cameras]


def _modbus_units(config: EdgeConfig) -> dict[str, tuple[int, ...]]:
    """Unit ids per Modbus port of the config: one simulated sensor answers them all."""
    units: dict[str, tuple[int, ...]] = {}
    for dev in config.devices:
        if isinstance(dev, ModbusDeviceConfig):
            units[dev.port] = (*units.get(dev.port, ()), dev.unit_id)
    return units


def _baudrate(config: EdgeConfig, port: str) -> int:
    # Devices sharing a port agree on line settings (config validation checks it).
    return next(d.baudrate for d in config.devices
                if isinstance(d, ModbusDeviceConfig) and d.port == port)


@contextlib.asynccontextmanager
async def simulated_classroom(config: EdgeConfig) -> AsyncIterator[EdgeConfig]:
    """Start a simulator for every device of the demo config; yield the config pointing at them."""
    tasks: list[asyncio.Task[None]] = []
    closers = []
    devices = []
    sensors: list[SimulatedModbusSensor] = []
    cables: dict[str, NullModem] = {}  # config port -> the virtual RS-485 line standing in for it
    projectors: list[SimulatedProjector] = []
    try:
        for port, units in _modbus_units(config).items():
            cable = cables[port] = NullModem()
            closers.append(cable.close)
            sensor = SimulatedModbusSensor(unit_ids=units)
            sensors.append(sensor)
            await sensor.serve_rtu(cable.b_path, _baudrate(config, port))
        for dev in config.devices:
            if isinstance(dev, NodeDeviceConfig):
                stream, path = open_pty()
                closers.append(stream.close)
                node = SimulatedNode(dev.id, interval_s=NODE_INTERVAL_S, rng=random.Random(dev.id))
                panic_every = PANIC_EVERY_S if dev.id == PANIC_NODE else 0.0
                tasks.append(asyncio.create_task(run_node(node, stream, panic_every_s=panic_every)))
                dev = dev.model_copy(update={"port": path})
            elif isinstance(dev, ModbusDeviceConfig):
                dev = dev.model_copy(update={"port": cables[dev.port].a_path})
            elif isinstance(dev, PjlinkDeviceConfig):
                projector = SimulatedProjector(lamp_hours=1520)
                projectors.append(projector)
                dev = dev.model_copy(update={"host": "127.0.0.1", "port": await projector.start()})
            devices.append(dev)
        yield config.model_copy(update={"devices": devices, "cameras": demo_cameras(config)})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sensor in sensors:
            await sensor.stop()
        for projector in projectors:
            await projector.stop()
        for close in closers:
            close()
