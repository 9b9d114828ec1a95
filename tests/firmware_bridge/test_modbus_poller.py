"""ModbusPoller on one RTU line with two slaves: one goes silent, the other keeps its schedule."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from firmware_bridge.modbus.bus import ModbusBus
from firmware_bridge.modbus.null_modem import NullModem
from firmware_bridge.modbus.poller import ModbusPoller, PolledDevice
from firmware_bridge.modbus.simulator import SENSOR_POINTS, SimulatedModbusSensor
from tests.conftest import cancel_and_wait

INTERVAL_S = 0.1


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_silent_slave_does_not_stall_the_healthy_one() -> None:
    sensor = SimulatedModbusSensor(unit_ids=(1, 2), update_interval_s=0.2, rng=random.Random(3))
    values: dict[str, list[dict[str, float]]] = {"room-101": [], "room-102": []}
    failures: list[tuple[str, str, int]] = []
    with NullModem(baudrate=19200) as modem:
        await sensor.serve_rtu(modem.b_path, baudrate=19200)
        bus = ModbusBus.rtu(modem.a_path, baudrate=19200, timeout_s=0.1, retries=1)
        devices = [PolledDevice("room-101", 1, SENSOR_POINTS, INTERVAL_S),
                   PolledDevice("room-102", 2, SENSOR_POINTS, INTERVAL_S)]
        poller = ModbusPoller(bus, devices, lambda key, v: values[key].append(v),
                              lambda key, reason, n: failures.append((key, reason, n)), max_backoff_s=1.0)
        task = asyncio.create_task(poller.run())
        try:
            await asyncio.sleep(0.5)
            assert len(values["room-102"]) >= 3 and not failures

            sensor.set_silent(True, unit_id=2)
            healthy_before = poller.stats["room-101"].polls
            asked_before = sensor.requests(2)
            window_s = 2.0
            await asyncio.sleep(window_s)
            healthy_polls = poller.stats["room-101"].polls - healthy_before
            asked = sensor.requests(2) - asked_before

            # The healthy slave kept (nearly) its schedule: 20 polls in 2 s at 0.1 s.
            assert healthy_polls >= 0.8 * window_s / INTERVAL_S, healthy_polls
            assert poller.stats["room-101"].failures == 0
            # The silent one was asked with backoff (0.2, 0.4, 0.8, 1 s) and without retries
            # after its first failure: a handful of timeouts instead of ~40.
            assert 2 <= asked <= 7, asked
            counts = [n for key, _, n in failures if key == "room-102"]
            assert counts == list(range(1, len(counts) + 1)) and len(counts) >= 3
            assert all("no response within 0.1s" in reason for _, reason, _ in failures)
            assert poller.stats["room-102"].consecutive_failures == len(counts)

            sensor.set_silent(False, unit_id=2)
            answered_before = len(values["room-102"])
            await wait_until(lambda: len(values["room-102"]) > answered_before, timeout=2.5)
            stats = poller.stats["room-102"]
            assert stats.consecutive_failures == 0 and stats.last_ok is not None
            assert 400 <= values["room-102"][-1]["co2"] <= 2500
            assert set(values["room-102"][-1]) == {p.name for p in SENSOR_POINTS}
        finally:
            await cancel_and_wait(task)
            await bus.close()
            await sensor.stop()


async def test_backoff_doubles_up_to_the_cap_and_callback_errors_do_not_stop_polling() -> None:
    sensor = SimulatedModbusSensor(unit_ids=(1,), update_interval_s=0)
    port = await sensor.serve_tcp("127.0.0.1", 0)
    bus = ModbusBus.tcp("127.0.0.1", port, timeout_s=0.2)
    seen: list[str] = []

    def broken_consumer(key: str, values: dict[str, float]) -> None:
        seen.append(key)
        raise RuntimeError("consumer bug")

    device = PolledDevice("hall", 1, SENSOR_POINTS, 0.05)
    poller = ModbusPoller(bus, [device], broken_consumer, lambda *_: None, max_backoff_s=0.3)
    assert [poller.backoff_s(device, n) for n in (1, 2, 3, 4, 10)] == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
    slow = PolledDevice("slow", 2, SENSOR_POINTS, 60.0)
    assert poller.backoff_s(slow, 1) == 60.0  # never sooner than the interval itself
    task = asyncio.create_task(poller.run())
    try:
        await wait_until(lambda: len(seen) >= 4, timeout=2.0)
        assert poller.stats["hall"].failures == 0
    finally:
        await cancel_and_wait(task)
        await bus.close()
        await sensor.stop()
    with pytest.raises(ValueError, match="unique"):
        ModbusPoller(bus, [device, device], broken_consumer, lambda *_: None)
