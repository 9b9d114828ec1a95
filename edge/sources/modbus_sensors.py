"""Modbus RTU/TCP sensors: one poller per bus, values normalised to readings with units."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from edge.bus import Bus
from edge.clock import Clock
from edge.config_devices import ModbusDeviceConfig
from edge.events import Reading
from edge.sources.availability import Availability
from firmware_bridge.modbus.bus import ModbusBus
from firmware_bridge.modbus.points import RegisterPoint
from firmware_bridge.modbus.poller import ModbusPoller, PolledDevice


def open_bus(port: str, devices: list[ModbusDeviceConfig]) -> ModbusBus:
    """Create the bus the devices share; the slowest device's timeout applies to all."""
    timeout = max(d.timeout_s for d in devices)
    retries = max(d.retries for d in devices)
    if port.startswith("tcp://"):
        parts = urlsplit(port)
        return ModbusBus.tcp(parts.hostname or "", parts.port or 502, timeout, retries)
    first = devices[0]
    return ModbusBus.rtu(port, first.baudrate, first.parity, first.stopbits, timeout_s=timeout,
                         retries=retries)


def polled_device(config: ModbusDeviceConfig) -> PolledDevice:
    """Describe a configured device to the poller."""
    points = tuple(
        RegisterPoint(name=r.metric, address=r.address, function=r.function, type=r.type,
                      scale=r.scale, offset=r.offset, unit=r.unit, word_order=r.word_order)
        for r in config.registers
    )
    return PolledDevice(config.id, config.unit_id, points, config.poll_s)


class ModbusBusSource:
    """Service: poll every device on one Modbus bus; a silent slave never stalls the others."""

    def __init__(self, port: str, devices: list[ModbusDeviceConfig], bus: Bus, clock: Clock) -> None:
        self.name = f"modbus:{port}"
        self._devices = {d.id: d for d in devices}
        self._bus = bus
        self._clock = clock
        self._units = {d.id: {r.metric: r.unit for r in d.registers} for d in devices}
        self.availability = {d.id: Availability(d.id, d.room_id, bus, clock) for d in devices}
        self.modbus = open_bus(port, devices)
        self.poller = ModbusPoller(self.modbus, [polled_device(d) for d in devices],
                                   self._on_values, self._on_failure)
        self.readings = 0

    def _on_values(self, device_id: str, values: dict[str, float]) -> None:
        device = self._devices[device_id]
        self.availability[device_id].seen(f"unit {device.unit_id} answering")
        now = self._clock.now()
        units = self._units[device_id]
        for metric, value in values.items():
            self._bus.publish(Reading(device_id, metric, value, units.get(metric, ""), now,
                                      device.room_id))
            self.readings += 1

    def _on_failure(self, device_id: str, reason: str, consecutive: int) -> None:
        if consecutive >= self._devices[device_id].missed_polls:
            self.availability[device_id].lost(reason)

    async def run(self, ready: Callable[[], None]) -> None:
        """Poll until cancelled; close the bus on the way out."""
        ready()
        try:
            await self.poller.run()
        finally:
            await self.modbus.close()
