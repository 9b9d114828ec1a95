"""ModbusBus against the pymodbus-server simulator: TCP (IPv4, IPv6) and RTU over a null-modem."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterator

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.pdu import ModbusPDU

from firmware_bridge.errors import ModbusReadError
from firmware_bridge.modbus.bus import ModbusBus, serial_port_problem
from firmware_bridge.modbus.null_modem import NullModem
from firmware_bridge.modbus.points import RegisterPoint
from firmware_bridge.modbus.simulator import CO2_ALARM_PPM, SENSOR_POINTS, SERIAL_BASE, SimulatedModbusSensor
from firmware_bridge.node_protocol import ReadingKind

SETTINGS = (
    RegisterPoint("co2_alarm", 0, "holding", unit="ppm"),
    RegisterPoint("serial", 1, "holding", "uint32"),
    RegisterPoint("led", 0, "coil", "bool"),
    RegisterPoint("fault", 0, "discrete", "bool"),
)


def assert_matches(values: dict[str, float], sensor: SimulatedModbusSensor, unit_id: int) -> None:
    """Read values equal the simulator's, to the resolution of their registers."""
    truth = sensor.values(unit_id)
    assert values["co2"] == round(truth["co2"])
    assert values["temperature"] == pytest.approx(truth["temperature"], abs=0.006)
    assert values["humidity"] == pytest.approx(truth["humidity"], abs=0.006)
    assert values["illuminance"] == round(truth["illuminance"])
    assert values["pm25"] == pytest.approx(truth["pm25"], rel=1e-6)
    assert 0 <= values["uptime"] < 60


@pytest.fixture
async def sensor() -> AsyncIterator[SimulatedModbusSensor]:
    # No drift in the background: the test compares against values it set itself.
    sim = SimulatedModbusSensor(unit_ids=(1, 2), update_interval_s=0, rng=random.Random(7))
    for _ in range(40):
        sim.step()
    yield sim
    await sim.stop()


@pytest.fixture
def modem() -> Iterator[NullModem]:
    with NullModem(baudrate=38400) as cable:
        yield cable


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_tcp_read_all_point_kinds(sensor: SimulatedModbusSensor, host: str) -> None:
    port = await sensor.serve_tcp(host, 0)
    bus = ModbusBus.tcp(host, port, timeout_s=0.5)
    try:
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
        assert bus.stats.requests == 1  # registers 0-7: one request
        settings = await bus.read(2, SETTINGS)
        assert settings == {"co2_alarm": CO2_ALARM_PPM, "serial": SERIAL_BASE + 2, "led": 0.0, "fault": 0.0}
        assert bus.stats.requests == 4  # one request per function
        assert bus.name == (f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}")
    finally:
        await bus.close()


async def test_exception_and_short_responses_are_read_errors(sensor: SimulatedModbusSensor) -> None:
    port = await sensor.serve_tcp("127.0.0.1", 0)
    bus = ModbusBus.tcp("127.0.0.1", port, timeout_s=0.5, retries=2)
    try:
        with pytest.raises(ModbusReadError, match="ILLEGAL DATA ADDRESS") as caught:
            await bus.read(1, [RegisterPoint("nothing", 100, "input")])
        assert caught.value.kind == "exception" and caught.value.exception_code == 2
        assert caught.value.unit_id == 1 and bus.stats.requests == 1  # not retried
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)  # the bus is still usable

        sensor.truncate_responses(3, unit_id=1)
        with pytest.raises(ModbusReadError, match="short response: 3 values") as caught:
            await bus.read(1, SENSOR_POINTS)
        assert caught.value.kind == "bad_response" and bus.stats.bad_responses == 3  # with 2 retries
        assert_matches(await bus.read(2, SENSOR_POINTS), sensor, 2)  # the other unit is unaffected
        sensor.truncate_responses(None)
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
    finally:
        await bus.close()


async def test_a_nan_reading_is_a_counted_bad_response(sensor: SimulatedModbusSensor) -> None:
    port = await sensor.serve_tcp("127.0.0.1", 0)
    bus = ModbusBus.tcp("127.0.0.1", port, timeout_s=0.5, retries=0)
    try:
        sensor.units[1].values[ReadingKind.PM25] = math.nan  # served as float32 0x7FC00000
        with pytest.raises(ModbusReadError, match="pm25: value is nan") as caught:
            await bus.read(1, SENSOR_POINTS)
        assert caught.value.kind == "bad_response" and bus.stats.bad_responses == 1
        assert_matches(await bus.read(2, SENSOR_POINTS), sensor, 2)  # the other unit still reads
    finally:
        await bus.close()


async def test_tcp_unknown_unit_times_out(sensor: SimulatedModbusSensor) -> None:
    port = await sensor.serve_tcp("127.0.0.1", 0)
    bus = ModbusBus.tcp("127.0.0.1", port, timeout_s=0.15, retries=1)
    try:
        with pytest.raises(ModbusReadError, match=r"no response within 0\.15s") as caught:
            await bus.read(9, SENSOR_POINTS)
        assert caught.value.kind == "timeout" and bus.stats.timeouts == 2
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
    finally:
        await bus.close()


async def test_tcp_reconnects_after_server_restart(sensor: SimulatedModbusSensor) -> None:
    port = await sensor.serve_tcp("::1", 0)
    bus = ModbusBus.tcp("[::1]", port, timeout_s=0.3, retries=0)  # as written in a URL
    try:
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
        await sensor.stop()
        for _ in range(2):  # the dropped connection, then a refused one
            with pytest.raises(ModbusReadError) as caught:
                await bus.read(1, SENSOR_POINTS)
            assert caught.value.kind in ("connection", "timeout")
        assert caught.value.kind == "connection" and bus.stats.connect_failures >= 1
        assert await sensor.serve_tcp("::1", port) == port
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
        assert bus.stats.reconnects == 1
    finally:
        await bus.close()


async def test_tcp_connection_refused_is_a_read_error() -> None:
    from tests.conftest import free_port

    bus = ModbusBus.tcp("127.0.0.1", free_port(), timeout_s=0.3)
    with pytest.raises(ModbusReadError, match="cannot connect") as caught:
        await bus.read(1, SENSOR_POINTS)
    assert caught.value.kind == "connection" and bus.stats.connect_failures == 2  # with 1 retry


async def test_rtu_read_two_slaves_over_null_modem(sensor: SimulatedModbusSensor, modem: NullModem) -> None:
    await sensor.serve_rtu(modem.b_path, baudrate=38400)
    bus = ModbusBus.rtu(modem.a_path, baudrate=38400, timeout_s=0.15, retries=0)
    try:
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
        assert_matches(await bus.read(2, SENSOR_POINTS), sensor, 2)
        assert (await bus.read(2, SETTINGS))["serial"] == SERIAL_BASE + 2
        with pytest.raises(ModbusReadError, match="no response") as caught:
            await bus.read(5, SENSOR_POINTS)  # nobody on the line has unit id 5
        assert caught.value.kind == "timeout"
        with pytest.raises(ModbusReadError, match="ILLEGAL DATA ADDRESS"):
            # One request for 6-9 (a gap of 2), but the sensor has no register 8 or 9.
            await bus.read(1, [RegisterPoint("end", 6, "input", "float32"), RegisterPoint("x", 9, "input")])
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
        assert bus.stats.timeouts == 1 and bus.stats.exceptions == 1 and bus.stats.reconnects == 0
        # Requests and responses crossed the cable byte for byte: 8 + (5 + 2 * 8) for a read of 8.
        assert modem.stats.a_to_b >= 8 * 7 and modem.stats.b_to_a >= 21 * 3
    finally:
        await bus.close()


async def test_rtu_missing_port_is_a_connection_error() -> None:
    bus = ModbusBus.rtu("/dev/does-not-exist", timeout_s=0.2, retries=0)
    with pytest.raises(ModbusReadError, match="cannot connect: No such file or directory") as caught:
        await bus.read(1, SENSOR_POINTS)
    assert caught.value.kind == "connection" and caught.value.bus == "rtu:/dev/does-not-exist"
    assert bus.stats.connect_failures == 1


def test_serial_port_problem() -> None:
    assert serial_port_problem("/dev/does-not-exist") == "No such file or directory: /dev/does-not-exist"
    assert serial_port_problem("loop://") is None  # a pyserial URL: nothing to check
    assert serial_port_problem("/dev/null") is None  # exists, readable and writable


async def test_a_cancellation_arriving_with_the_response_is_not_lost(sensor: SimulatedModbusSensor) -> None:
    # pymodbus waits for a response with asyncio.wait_for, which on Python 3.11 returns the
    # response instead of raising when the task is cancelled in the loop iteration the
    # response arrives in: a cancelled poller would poll on forever. trace_pdu runs right
    # where the response arrives, so the cancellation lands in that iteration every time.
    port = await sensor.serve_tcp("127.0.0.1", 0)
    reader: asyncio.Task[dict[str, float]] | None = None

    def cancel_on_response(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and reader is not None:
            reader.cancel()
        return pdu

    def client() -> ModbusBaseClient:
        return AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0, reconnect_delay=0,
                                    trace_pdu=cancel_on_response)

    bus = ModbusBus("tcp:test", client, timeout_s=0.5, retries=0)
    try:
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)  # connected, nothing cancelled
        reader = asyncio.create_task(bus.read(1, SENSOR_POINTS))
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert reader.cancelled()
        reader = None
        assert_matches(await bus.read(2, SENSOR_POINTS), sensor, 2)  # the bus is still usable
        assert bus.stats.requests == 3 and bus.stats.responses == 2
    finally:
        await bus.close()


async def test_a_request_stuck_in_pymodbus_times_out_and_replaces_the_client(
    sensor: SimulatedModbusSensor,
) -> None:
    port = await sensor.serve_tcp("127.0.0.1", 0)
    clients: list[ModbusBaseClient] = []

    async def never_answers(*_args: object, **_kwargs: object) -> ModbusPDU:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def client() -> ModbusBaseClient:
        made = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.1, retries=0, reconnect_delay=0)
        if not clients:  # the first client's requests never end, whatever pymodbus's timeout
            made.read_input_registers = never_answers  # type: ignore[method-assign,assignment]
        clients.append(made)
        return made

    bus = ModbusBus("tcp:test", client, timeout_s=0.1, retries=0)
    try:
        with pytest.raises(ModbusReadError, match=r"no response within 0\.1s") as caught:
            await asyncio.wait_for(bus.read(1, SENSOR_POINTS), timeout=5)
        assert caught.value.kind == "timeout"
        assert bus.stats.timeouts == 1 and bus.stats.stalls == 1
        assert not clients[0].connected  # dropped rather than trusted again
        assert_matches(await bus.read(1, SENSOR_POINTS), sensor, 1)
        assert len(clients) == 2 and bus.stats.reconnects == 1
    finally:
        await bus.close()
