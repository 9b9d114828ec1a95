"""One physical Modbus bus (an RS-485 line or a TCP connection), read through pymodbus."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pymodbus import ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from firmware_bridge.errors import ModbusReadError
from firmware_bridge.modbus.points import BIT_FUNCTIONS, ReadBlock, RegisterPoint, decode_points, plan_reads
from firmware_bridge.modbus.timing import frame_gap_s

log = logging.getLogger(__name__)
T = TypeVar("T")

FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
# Exception codes by their names in the Modbus application protocol spec (section 7).
EXCEPTION_NAMES = {
    1: "ILLEGAL FUNCTION", 2: "ILLEGAL DATA ADDRESS", 3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE", 5: "ACKNOWLEDGE", 6: "SERVER DEVICE BUSY", 8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE", 11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
# pymodbus reports "no response" as a ModbusIOException; this is how its message starts.
_NO_RESPONSE = "no response received"


@dataclass
class BusStats:
    """Counters of one bus."""

    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    exceptions: int = 0
    bad_responses: int = 0
    connect_failures: int = 0
    reconnects: int = 0
    stalls: int = 0  # requests or connects pymodbus did not end itself: the client was replaced


@functools.lru_cache(maxsize=256)
def _plan(points: tuple[RegisterPoint, ...]) -> tuple[ReadBlock, ...]:
    # Devices are polled with the same points again and again: plan once.
    return tuple(plan_reads(points))


class ModbusBus:
    """One bus: a serial line with its slaves, or a TCP connection; one request at a time."""

    def __init__(
        self, name: str, client_factory: Callable[[], ModbusBaseClient], timeout_s: float,
        retries: int = 1, frame_gap: float = 0.0, preflight: Callable[[], str | None] | None = None,
    ) -> None:
        self.name = name
        self._factory = client_factory
        self._preflight = preflight  # why connecting cannot work, told before pymodbus hides it
        self._timeout_s = timeout_s
        self._retries = retries
        self._frame_gap = frame_gap
        self._quiet_until = 0.0
        self._client: ModbusBaseClient | None = None
        self._was_connected = False
        self._lock = asyncio.Lock()  # RS-485 is half duplex: one request on the line at a time
        self.stats = BusStats()

    @classmethod
    def rtu(
        cls, port: str, baudrate: int = 9600, parity: str = "N", stopbits: int = 1, bytesize: int = 8,
        timeout_s: float = 0.5, retries: int = 1,
    ) -> ModbusBus:
        """A Modbus RTU line on a serial port (a device path or a pyserial URL)."""

        def client() -> ModbusBaseClient:
            # retries=0: we retry ourselves, so a poller can read a silent slave without
            # retries; reconnect_delay=0: we reconnect lazily instead of a background task.
            return AsyncModbusSerialClient(
                port, baudrate=baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize,
                timeout=timeout_s, retries=0, reconnect_delay=0, name=f"rtu:{port}",
            )

        return cls(f"rtu:{port}", client, timeout_s, retries, frame_gap_s(baudrate),
                   functools.partial(serial_port_problem, port))

    @classmethod
    def tcp(cls, host: str, port: int = 502, timeout_s: float = 1.0, retries: int = 1) -> ModbusBus:
        """A Modbus TCP device or gateway; host may be a name, an IPv4 or an IPv6 literal."""
        host = host.strip("[]")  # "[::1]" as written in URLs
        name = f"tcp:[{host}]:{port}" if ":" in host else f"tcp:{host}:{port}"

        def client() -> ModbusBaseClient:
            return AsyncModbusTcpClient(
                host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0, name=name
            )

        return cls(name, client, timeout_s, retries)

    async def read(
        self, unit_id: int, points: Sequence[RegisterPoint], retries: int | None = None
    ) -> dict[str, float]:
        """Read all points of one device, in as few requests as possible; ModbusReadError if any fails."""
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id must be 0-255, not {unit_id}")
        attempts = 1 + max(0, self._retries if retries is None else retries)
        values: dict[str, float] = {}
        async with self._lock:
            for block in _plan(tuple(points)):
                values.update(await self._read_block(unit_id, block, attempts))
        return values

    async def close(self) -> None:
        """Close the connection (the next read opens it again)."""
        async with self._lock:
            self._drop_client()

    async def _read_block(self, unit_id: int, block: ReadBlock, attempts: int) -> dict[str, float]:
        for attempt in range(attempts):
            try:
                return await self._request(unit_id, block)
            except ModbusReadError as err:
                # An exception response is the device's considered answer: asking again won't help.
                if err.kind == "exception" or attempt == attempts - 1:
                    raise
                log.debug("%s: retrying after %s", self.name, err.reason)
        raise AssertionError("unreachable")  # attempts >= 1

    async def _request(self, unit_id: int, block: ReadBlock) -> dict[str, float]:
        client = await self._connected_client(unit_id)
        what = f"{block.count} {block.function} from {block.address}"
        delay = self._quiet_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.stats.requests += 1
        try:
            # pymodbus times out first (and says so as a ModbusIOException); this deadline
            # only fires for a request that pymodbus does not end.
            async with asyncio.timeout(2 * self._timeout_s + 1.0):
                response = await _keeping_cancellation(_send(client, unit_id, block))
        except TimeoutError as err:
            self._stalled(f"reading {what} from unit {unit_id}")
            self.stats.timeouts += 1
            raise self._error(unit_id, f"no response within {self._timeout_s:g}s reading {what}",
                              "timeout") from err
        except ConnectionException as err:
            self._drop_client()
            raise self._error(unit_id, f"connection lost reading {what}", "connection") from err
        except ModbusIOException as err:
            if _NO_RESPONSE in str(err).lower():
                self.stats.timeouts += 1
                raise self._error(unit_id, f"no response within {self._timeout_s:g}s reading {what}",
                                  "timeout") from err
            self.stats.bad_responses += 1
            raise self._error(unit_id, f"bad response reading {what}: {err}") from err
        except (ModbusException, ValueError) as err:
            self.stats.bad_responses += 1
            raise self._error(unit_id, f"bad response reading {what}: {err}") from err
        finally:
            # The next frame may start only after the line was silent for 3.5 characters.
            self._quiet_until = time.monotonic() + self._frame_gap
        self.stats.responses += 1
        return self._decode(unit_id, block, response, what)

    def _decode(self, unit_id: int, block: ReadBlock, response: ModbusPDU, what: str) -> dict[str, float]:
        if response.isError():
            self.stats.exceptions += 1
            code = response.exception_code
            name = EXCEPTION_NAMES.get(code, "unknown")
            raise self._error(unit_id, f"exception response {code} ({name}) reading {what}",
                              "exception", code)
        if response.function_code != FUNCTION_CODES[block.function]:
            self.stats.bad_responses += 1
            raise self._error(unit_id, f"response of function {response.function_code} reading {what}")
        data = response.bits if block.function in BIT_FUNCTIONS else response.registers
        if len(data) < block.count:
            self.stats.bad_responses += 1
            raise self._error(unit_id, f"short response: {len(data)} values reading {what}")
        try:
            return decode_points(block.points, block.function, block.address, data[:block.count])
        except ValueError as err:
            self.stats.bad_responses += 1
            raise self._error(unit_id, f"bad response reading {what}: {err}") from err

    async def _connected_client(self, unit_id: int) -> ModbusBaseClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop_client()
        if self._preflight is not None and (problem := self._preflight()) is not None:
            self.stats.connect_failures += 1
            raise self._error(unit_id, f"cannot connect: {problem}", "connection")
        client = self._factory()
        # pymodbus returns False for refused, unreachable and absent ports (and logs why);
        # bad serial settings raise instead.
        reason = "cannot connect (refused, unreachable or no such port)"
        try:
            # Bounded by timeout_s inside pymodbus; the deadline only in case it is not.
            async with asyncio.timeout(self._timeout_s + 1.0):
                connected = await _keeping_cancellation(client.connect())
        except TimeoutError:
            self._stalled("connecting")
            reason, connected = f"cannot connect: no connection within {self._timeout_s:g}s", False
        except (OSError, ValueError, ModbusException) as err:
            reason, connected = f"cannot connect: {err}", False
        except BaseException:
            client.close()  # cancelled: leave no port open behind
            raise
        if not connected:
            client.close()
            self.stats.connect_failures += 1
            raise self._error(unit_id, reason, "connection")
        if self._was_connected:
            self.stats.reconnects += 1
        log.info("%s: connected", self.name)
        self._was_connected = True
        self._client = client
        return client

    def _stalled(self, doing: str) -> None:
        # Whatever pymodbus waits for, it is not coming: start over with a new client.
        self.stats.stalls += 1
        log.warning("%s: pymodbus did not end %s; replacing the client", self.name, doing)
        self._drop_client()

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _error(self, unit_id: int, reason: str, kind: str = "bad_response",
               code: int | None = None) -> ModbusReadError:
        return ModbusReadError(self.name, unit_id, reason, kind, code)


def serial_port_problem(port: str) -> str | None:
    """Why a serial device path cannot be opened (missing, no permission), or None if it may."""
    # pymodbus only returns False (and logs the reason, often silenced); the most common
    # field faults, a missing adapter and a user outside the dialout group, must show.
    if "://" in port:
        return None  # a pyserial URL: nothing on disk to check
    try:
        Path(port).stat()
    except OSError as err:
        return f"{err.strerror or err}: {port}"
    if not os.access(port, os.R_OK | os.W_OK):
        return f"Permission denied: {port} (needs read and write access, e.g. the dialout group)"
    return None


async def _keeping_cancellation(awaitable: Awaitable[T]) -> T:
    """Await a pymodbus call, and raise CancelledError if the task was cancelled meanwhile.

    pymodbus waits for responses (and connections) with asyncio.wait_for, which on
    Python 3.11 returns the result instead of raising when the cancellation comes in the
    loop iteration that result does (fixed in 3.12). Lost, the cancellation of a poller
    leaves it polling forever and whoever cancelled it waiting forever; raised again here,
    it works as asyncio.timeout and Task.cancel() callers expect.
    """
    task = asyncio.current_task()
    cancelling = task.cancelling() if task is not None else 0
    result = await awaitable
    if task is not None and task.cancelling() > cancelling:
        raise asyncio.CancelledError
    return result


def _send(client: ModbusBaseClient, unit_id: int, block: ReadBlock) -> Awaitable[ModbusPDU]:
    read = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[block.function]
    return read(block.address, count=block.count, device_id=unit_id)
