"""The virtual null-modem (paced and unpaced) and the RTU polling benchmark on it."""

from __future__ import annotations

import time

import pytest
import serial

from firmware_bridge.modbus.bench import bench_rtu_polls, line_rate_bound_per_s
from firmware_bridge.modbus.null_modem import NullModem


def transfer(modem: NullModem, data: bytes) -> tuple[bytes, float]:
    """Send data from end A to end B with pyserial; return what B got and how long it took."""
    a = serial.Serial(modem.a_path, timeout=2.0)
    b = serial.Serial(modem.b_path, timeout=2.0)
    try:
        start = time.monotonic()
        a.write(data)
        got = b.read(len(data))
        return got, time.monotonic() - start
    finally:
        a.close()
        b.close()


def test_unpaced_null_modem_carries_bytes_both_ways() -> None:
    with NullModem() as modem:
        data = bytes(range(256)) * 4  # every byte value: nothing is translated by the ttys
        got, _ = transfer(modem, data)
        assert got == data
        b = serial.Serial(modem.b_path, timeout=1.0)
        a = serial.Serial(modem.a_path, timeout=1.0)
        try:
            b.write(b"\x01\x03\x00\x00\x00\x01\x84\x0a")
            assert a.read(8) == b"\x01\x03\x00\x00\x00\x01\x84\x0a"
        finally:
            a.close()
            b.close()
        assert modem.stats.a_to_b == len(data) and modem.stats.b_to_a == 8


def test_paced_null_modem_takes_the_line_time() -> None:
    with NullModem(baudrate=9600) as modem:
        data = bytes(96)
        got, elapsed = transfer(modem, data)
        # 96 characters of 11 bits at 9600 baud: 110 ms on a real line. Never faster; slower
        # only by what a loaded machine adds, which is not the cable's doing.
        assert got == data
        assert elapsed >= 0.105, elapsed


def test_line_rate_bound() -> None:
    # 4 registers: 8 + 13 bytes, plus 2 * 3.5 characters of silence, 11 bits each.
    assert line_rate_bound_per_s(9600, 4) == pytest.approx(9600 / (28 * 11))
    # Above 19200 baud the silent interval is fixed at 1.75 ms.
    assert line_rate_bound_per_s(115200, 4) == pytest.approx(1 / (21 * 11 / 115200 + 2 * 0.00175))


async def test_rtu_poll_benchmark_runs_within_the_line_rate() -> None:
    # How close polling comes to the line rate is a benchmark (python -m
    # firmware_bridge.modbus.bench), not a timed assertion: here only that it works and
    # that the paced cable is a hard limit, which no load on the machine can break.
    result = await bench_rtu_polls(duration_s=0.5, baudrate=9600)
    assert result["registers"] == 4 and result["line_rate_bound_per_s"] == round(9600 / 308, 2)
    assert result["polls"] >= 1 and 0 < result["ratio"] <= 1.0, result
