"""How close Modbus RTU polling through ModbusBus comes to what the serial line allows."""

from __future__ import annotations

import asyncio
import json
import time

from firmware_bridge.modbus.bus import ModbusBus
from firmware_bridge.modbus.null_modem import NullModem
from firmware_bridge.modbus.points import RegisterPoint
from firmware_bridge.modbus.simulator import SENSOR_POINTS, SimulatedModbusSensor
from firmware_bridge.modbus.timing import char_time_s, frame_gap_s

REQUEST_BYTES = 8  # unit, function, address (2), count (2), CRC (2)


def line_rate_bound_per_s(baudrate: int, registers: int) -> float:
    """Register reads per second the line carries at most: both frames and a t3.5 gap after each."""
    response_bytes = 5 + 2 * registers  # unit, function, byte count, data, CRC (2)
    seconds = (REQUEST_BYTES + response_bytes) * char_time_s(baudrate) + 2 * frame_gap_s(baudrate)
    return 1.0 / seconds


async def bench_rtu_polls(duration_s: float = 5.0, baudrate: int = 9600) -> dict[str, float]:
    """Poll one simulated device over a paced null-modem as fast as possible; compare to the line."""
    points: tuple[RegisterPoint, ...] = SENSOR_POINTS[:4]  # registers 0-3: one request of 4
    registers = sum(point.count for point in points)
    sensor = SimulatedModbusSensor(unit_ids=(1,))
    with NullModem(baudrate=baudrate) as modem:
        await sensor.serve_rtu(modem.b_path, baudrate=baudrate)
        bus = ModbusBus.rtu(modem.a_path, baudrate=baudrate, timeout_s=0.5, retries=0)
        try:
            await bus.read(1, points)  # opens the port: not part of the measurement
            polls = 0
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < duration_s:
                await bus.read(1, points)
                polls += 1
        finally:
            await bus.close()
            await sensor.stop()
    measured = polls / elapsed
    bound = line_rate_bound_per_s(baudrate, registers)
    return {
        "polls_per_s": round(measured, 2),
        "line_rate_bound_per_s": round(bound, 2),
        "ratio": round(measured / bound, 3),
        "polls": polls,
        "baudrate": baudrate,
        "registers": registers,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(bench_rtu_polls())))
