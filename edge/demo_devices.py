"""The simulated classroom behind `edge demo`: nodes on ptys, a Modbus sensor, a projector."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

from edge.config import EdgeConfig
from edge.config_devices import ModbusDeviceConfig, NodeDeviceConfig, PjlinkDeviceConfig
from firmware_bridge.modbus.null_modem import NullModem
from firmware_bridge.modbus.simulator import SimulatedModbusSensor
from firmware_bridge.pjlink.simulator import SimulatedProjector
from firmware_bridge.simulator import SimulatedNode, run_node
from firmware_bridge.streams import open_pty

NODE_INTERVAL_S = 1.0


@contextlib.asynccontextmanager
async def simulated_classroom(config: EdgeConfig) -> AsyncIterator[EdgeConfig]:
    """Start a simulator for every device of the demo config; yield the config pointing at them."""
    tasks: list[asyncio.Task[None]] = []
    closers = []
    devices = []
    modbus: SimulatedModbusSensor | None = None
    projectors: list[SimulatedProjector] = []
    try:
        for dev in config.devices:
            if isinstance(dev, NodeDeviceConfig):
                stream, path = open_pty()
                closers.append(stream.close)
                node = SimulatedNode(dev.id, interval_s=NODE_INTERVAL_S, rng=random.Random(dev.id))
                tasks.append(asyncio.create_task(run_node(node, stream)))
                dev = dev.model_copy(update={"port": path})
            elif isinstance(dev, ModbusDeviceConfig):
                if modbus is None:
                    cable = NullModem()
                    closers.append(cable.close)
                    modbus = SimulatedModbusSensor(unit_ids=(dev.unit_id,))
                    await modbus.serve_rtu(cable.b_path, dev.baudrate)
                dev = dev.model_copy(update={"port": cable.a_path})
            elif isinstance(dev, PjlinkDeviceConfig):
                projector = SimulatedProjector(lamp_hours=1520)
                projectors.append(projector)
                dev = dev.model_copy(update={"host": "127.0.0.1", "port": await projector.start()})
            devices.append(dev)
        yield config.model_copy(update={"devices": devices})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if modbus is not None:
            await modbus.stop()
        for projector in projectors:
            await projector.stop()
        for close in closers:
            close()
