"""A simulated classroom environment sensor speaking Modbus (a pymodbus server), for tests and demos.

Every unit id served has the same register map; its values drift slowly (see
firmware_bridge.drift), one step per update interval.

Input registers (function 4), words big-endian:
    0    co2          uint16   ppm
    1    temperature  int16    x0.01 °C
    2    humidity     uint16   x0.01 %RH
    3    illuminance  uint16   lx
    4-5  pm25         float32  µg/m³ (high word first)
    6-7  uptime       uint32   s since the sensor started serving (high word first)
Holding registers (function 3): 0 co2 alarm threshold uint16 ppm (1500), 1-2 serial
number uint32. Coil 0: status LED. Discrete input 0: sensor fault. Other addresses
answer ILLEGAL ADDRESS.

Like slaves on a real RS-485 line, a unit that is silent (set_silent) or a unit id
that is not served does not answer at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from firmware_bridge.drift import DRIFTS
from firmware_bridge.errors import TransportError
from firmware_bridge.modbus.points import RegisterPoint
from firmware_bridge.node_protocol import ReadingKind

# The input registers above, as a poller reads them.
SENSOR_POINTS: tuple[RegisterPoint, ...] = (
    RegisterPoint("co2", 0, "input", "uint16", unit="ppm"),
    RegisterPoint("temperature", 1, "input", "int16", scale=0.01, unit="°C"),
    RegisterPoint("humidity", 2, "input", "uint16", scale=0.01, unit="%"),
    RegisterPoint("illuminance", 3, "input", "uint16", unit="lx"),
    RegisterPoint("pm25", 4, "input", "float32", unit="µg/m³"),
    RegisterPoint("uptime", 6, "input", "uint32", unit="s"),
)
CO2_ALARM_PPM = 1500
SERIAL_BASE = 0x5EB5_0000  # serial number = this + unit id
_KINDS = (ReadingKind.CO2, ReadingKind.TEMPERATURE, ReadingKind.HUMIDITY, ReadingKind.ILLUMINANCE,
          ReadingKind.PM25)
_NAMES = ("co2", "temperature", "humidity", "illuminance", "pm25")


@dataclass
class _Unit:
    unit_id: int
    values: dict[ReadingKind, float] = field(
        default_factory=lambda: {kind: DRIFTS[kind].typical for kind in _KINDS})
    silent: bool = False
    truncate_to: int | None = None
    requests: int = 0


class SimulatedModbusSensor:
    """Environment sensors on unit ids of one Modbus server (TCP, RTU, or both at once)."""

    def __init__(self, unit_ids: Sequence[int] = (1,), update_interval_s: float = 1.0,
                 rng: random.Random | None = None) -> None:
        if not unit_ids or not all(1 <= u <= 247 for u in unit_ids):
            raise ValueError(f"unit ids must be 1-247, not {list(unit_ids)}")
        self.units = {unit_id: _Unit(unit_id) for unit_id in unit_ids}
        self.update_interval_s = update_interval_s
        self._rng = rng or random.Random()
        self._started = time.monotonic()
        self._servers: list[ModbusBaseServer] = []
        self._drift_task: asyncio.Task[None] | None = None
        self._drop_next = False

    def values(self, unit_id: int) -> dict[str, float]:
        """The current (unquantised) measurements of a unit, by point name."""
        unit = self.units[unit_id]
        return {name: unit.values[kind] for name, kind in zip(_NAMES, _KINDS, strict=True)}

    def requests(self, unit_id: int) -> int:
        """Requests addressed to a unit so far (answered or not)."""
        return self.units[unit_id].requests

    def step(self) -> None:
        """Drift every unit's measurements by one step."""
        for unit in self.units.values():
            for kind in _KINDS:
                unit.values[kind] = DRIFTS[kind].next(unit.values[kind], self._rng)

    def set_silent(self, silent: bool, unit_id: int | None = None) -> None:
        """Make one unit (or all) stop answering, or answer again."""
        for unit in self._select(unit_id):
            unit.silent = silent

    def truncate_responses(self, registers: int | None, unit_id: int | None = None) -> None:
        """Answer register reads with at most this many registers (None: whole answers)."""
        for unit in self._select(unit_id):
            unit.truncate_to = registers

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP on host:port (IPv4 or IPv6; 0 picks a free port); return the port."""
        server = ModbusTcpServer(self._devices(), address=(host.strip("[]"), port),
                                 trace_pdu=self._trace_pdu, trace_packet=self._trace_packet)
        await self._start(server, f"{host}:{port}")
        sockets = server.transport.sockets  # type: ignore[attr-defined]  # an asyncio.Server here
        return int(sockets[0].getsockname()[1])

    async def serve_rtu(self, port_path: str, baudrate: int = 9600) -> None:
        """Serve Modbus RTU on a serial port (or a null-modem end)."""
        server = ModbusSerialServer(self._devices(), framer=FramerType.RTU, port=port_path,
                                    baudrate=baudrate, trace_pdu=self._trace_pdu,
                                    trace_packet=self._trace_packet)
        await self._start(server, port_path)

    async def stop(self) -> None:
        """Stop every server and the drift; the sensor can serve again later."""
        servers, self._servers = self._servers, []
        for server in servers:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
        if self._drift_task is not None:
            self._drift_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drift_task
            self._drift_task = None

    async def _start(self, server: ModbusBaseServer, where: str) -> None:
        try:
            await server.serve_forever(background=True)
        except RuntimeError as err:  # pymodbus: "Could not start listen"
            raise TransportError(where, str(err)) from err
        self._servers.append(server)
        if self._drift_task is None and self.update_interval_s > 0:
            self._drift_task = asyncio.create_task(self._drift(), name="modbus sensor drift")

    async def _drift(self) -> None:
        while True:
            await asyncio.sleep(self.update_interval_s)
            self.step()

    def _select(self, unit_id: int | None) -> list[_Unit]:
        return list(self.units.values()) if unit_id is None else [self.units[unit_id]]

    def _devices(self) -> list[SimDevice]:
        # Unit 0 catches requests to unit ids nobody serves; _trace_packet drops its answers.
        sink = SimDevice(0, simdata=[SimData(0, datatype=DataType.REGISTERS)])
        return [sink, *(self._device(unit) for unit in self.units.values())]

    def _device(self, unit: _Unit) -> SimDevice:
        coils = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        inputs = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        holding = [SimData(0, values=CO2_ALARM_PPM, datatype=DataType.UINT16),
                   SimData(1, values=SERIAL_BASE + unit.unit_id, datatype=DataType.UINT32)]
        registers = [SimData(0, count=8, values=0, datatype=DataType.UINT16, readonly=True)]
        return SimDevice(unit.unit_id, simdata=(coils, inputs, holding, registers),
                         action=self._action(unit))

    def _action(self, unit: _Unit) -> SimAction:
        async def on_access(function_code: int, start_address: int, _address: int, _count: int,
                            registers: list[int], _set_values: list[int] | list[bool] | None,
                            ) -> ExcCodes | None:
            # Fill the input registers just before pymodbus copies them into the answer
            # (the block starts at address 0).
            if function_code == 4 and start_address == 0:
                words = self._input_registers(unit)
                registers[:len(words)] = words
            return None

        return on_access

    def _input_registers(self, unit: _Unit) -> list[int]:
        v = unit.values
        uptime = int(time.monotonic() - self._started) & 0xFFFF_FFFF
        data = struct.pack(
            ">HhHHfI",
            _fit(v[ReadingKind.CO2], 0, 0xFFFF), _fit(v[ReadingKind.TEMPERATURE] * 100, -0x8000, 0x7FFF),
            _fit(v[ReadingKind.HUMIDITY] * 100, 0, 0xFFFF), _fit(v[ReadingKind.ILLUMINANCE], 0, 0xFFFF),
            v[ReadingKind.PM25], uptime,
        )
        return list(struct.unpack(">8H", data))

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        unit = self.units.get(pdu.dev_id)
        if not sending:
            if unit is not None:
                unit.requests += 1
            return pdu
        # pymodbus frames and sends this PDU right after this call (synchronously), so a
        # flag tells _trace_packet which frame to swallow.
        self._drop_next = unit is None or unit.silent
        if unit is not None and unit.truncate_to is not None and pdu.registers:
            pdu.registers = list(pdu.registers)[:unit.truncate_to]
        return pdu

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        if sending and self._drop_next:
            self._drop_next = False
            return b""  # pymodbus writes nothing: the client sees silence
        return packet


def _fit(value: float, low: int, high: int) -> int:
    return min(high, max(low, round(value)))
