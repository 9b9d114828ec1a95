"""Composition of the device layer: one service per configured device (or shared bus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from edge.bus import Bus
from edge.clock import Clock
from edge.commands import CommandService
from edge.config import EdgeConfig
from edge.config_devices import (
    ModbusDeviceConfig,
    MqttSensorConfig,
    NodeDeviceConfig,
    PjlinkDeviceConfig,
    SimulatedSensorConfig,
)
from edge.events import Envelope, SafetyEvent
from edge.mqtt import MqttLink
from edge.sources.modbus_sensors import ModbusBusSource
from edge.sources.mqtt_sensors import MqttSensorSource
from edge.sources.nodes import NodeSource
from edge.sources.projectors import ProjectorSource
from edge.sources.simulated import SimulatedSensor
from edge.supervisor import Service

RecordEvent = Callable[[SafetyEvent], Awaitable[Envelope]]


def build_device_services(
    config: EdgeConfig, bus: Bus, clock: Clock, link: MqttLink, commands: CommandService,
    record_event: RecordEvent, passwords: dict[str, str | None],
) -> list[Service]:
    """Create the sources for every configured device and register the commandable ones."""
    services: list[Service] = []
    mqtt_sensors: list[MqttSensorConfig] = []
    modbus_buses: dict[str, list[ModbusDeviceConfig]] = {}
    for dev in config.devices:
        if isinstance(dev, NodeDeviceConfig):
            node = NodeSource(dev, bus, clock, record_event)
            commands.register(dev.id, "node", node.execute)
            services.append(node)
        elif isinstance(dev, PjlinkDeviceConfig):
            projector = ProjectorSource(dev, passwords.get(dev.id), bus, clock)
            commands.register(dev.id, "pjlink", projector.execute)
            services.append(projector)
        else:
            # Sensors are read-only: registered so a command to one is refused as such
            # (no action is valid for their type), not as an unknown device.
            commands.register(dev.id, dev.type, None)
            if isinstance(dev, SimulatedSensorConfig):
                services.append(SimulatedSensor(dev, bus, clock))
            elif isinstance(dev, MqttSensorConfig):
                mqtt_sensors.append(dev)
            else:
                modbus_buses.setdefault(dev.port, []).append(dev)
    # Devices on one port share a bus and one poller, so they take turns on the line.
    services += [ModbusBusSource(port, devs, bus, clock) for port, devs in modbus_buses.items()]
    if mqtt_sensors:
        services.append(MqttSensorSource(mqtt_sensors, link, bus, clock))
    return services
