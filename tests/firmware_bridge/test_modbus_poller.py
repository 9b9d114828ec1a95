"""ModbusPoller on one RTU line with two slaves: one goes silent, the other keeps its schedule."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.pdu import ModbusPDU

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
        loop = asyncio.get_running_loop()
        healthy = poller.stats["room-101"]

        async def healthy_rate(until: Callable[[], bool], at_least_s: float) -> tuple[float, float]:
            """room-101's polls per second, and the seconds, from now until `until` and at_least_s."""
            polls, started = healthy.polls, loop.time()
            await asyncio.sleep(at_least_s)
            await wait_until(until, timeout=20)
            elapsed = loop.time() - started
            return (healthy.polls - polls) / elapsed, elapsed

        try:
            await wait_until(lambda: len(values["room-102"]) >= 3, timeout=10)
            assert not failures
            both_answer, _ = await healthy_rate(lambda: True, 1.0)

            sensor.set_silent(True, unit_id=2)
            asked_before = sensor.requests(2)
            one_silent, silent_s = await healthy_rate(lambda: len(failures) >= 3, 2.0)
            counts = [n for key, _, n in failures if key == "room-102"]
            asked = sensor.requests(2) - asked_before

            # Relative, not absolute, so a loaded machine slows both windows alike: the
            # silent slave's timeouts cost the healthy one little of its schedule.
            assert one_silent >= 0.5 * both_answer, (one_silent, both_answer)
            assert poller.stats["room-101"].failures == 0
            # The silent one was asked with backoff and without retries after its first
            # failure: one request per failed poll, plus the first poll's retry (and at
            # most one request still waiting for its timeout).
            assert asked <= len(counts) + 2, (asked, counts)
            # Backed off (0.2, 0.4, 0.8, then 1 s) instead of asked every 0.2 s: an upper
            # bound, which load cannot break, as it only stretches the pauses.
            assert len(counts) <= 4 + silent_s / 1.0, (counts, silent_s)
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


async def test_a_poller_cancelled_as_a_response_arrives_stops() -> None:
    # The flaky hang of the test above, made deterministic: pymodbus's asyncio.wait_for
    # (Python 3.11) swallowed a cancel that came in the loop iteration of a response, so
    # the poller polled on and whoever cancelled it (a service stopping) waited forever.
    sensor = SimulatedModbusSensor(unit_ids=(1,), update_interval_s=0)
    port = await sensor.serve_tcp("127.0.0.1", 0)
    responses = 0
    task: asyncio.Task[None] | None = None

    def cancel_on_third_response(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        nonlocal responses
        if not sending:
            responses += 1
            if responses == 3 and task is not None:
                task.cancel()
        return pdu

    def client() -> ModbusBaseClient:
        return AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0, reconnect_delay=0,
                                    trace_pdu=cancel_on_third_response)

    bus = ModbusBus("tcp:test", client, timeout_s=0.5)
    seen: list[dict[str, float]] = []
    poller = ModbusPoller(bus, [PolledDevice("hall", 1, SENSOR_POINTS, 0.01)],
                          lambda _key, values: seen.append(values), lambda *_: None)
    task = asyncio.create_task(poller.run())
    try:
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, f"the cancelled poller still polls: {responses} responses"
        assert task.cancelled() and responses == 3 and len(seen) == 2
    finally:
        if not task.done():  # without the fix: stop it the hard way rather than hang
            task.cancel()
            await asyncio.wait({task}, timeout=1)
        await bus.close()
        await sensor.stop()
