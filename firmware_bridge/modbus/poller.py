"""Poll the devices of one Modbus bus, each on its own interval; a silent one must not stall the rest."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from firmware_bridge.errors import ModbusReadError
from firmware_bridge.modbus.bus import ModbusBus
from firmware_bridge.modbus.points import RegisterPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolledDevice:
    """A device on the bus: its key (for callbacks), unit id, points and poll interval."""

    key: str
    unit_id: int
    points: tuple[RegisterPoint, ...]
    interval_s: float


@dataclass
class DevicePollStats:
    """Counters of one polled device (polls counts attempts, failures those that failed)."""

    polls: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_ok: float | None = None  # monotonic time of the last good poll
    last_error: str = ""


class ModbusPoller:
    """Poll every device of one bus on its interval until cancelled.

    A bus carries one request at a time, so devices take turns in the order their polls
    fall due. A device that failed is asked again without retries and only after a
    backoff (its interval doubled per consecutive failure, up to max_backoff_s), so a
    slave that stopped answering costs at most one timeout per backoff period while the
    others keep their schedule.
    """

    def __init__(
        self,
        bus: ModbusBus,
        devices: Sequence[PolledDevice],
        on_values: Callable[[str, dict[str, float]], None],
        on_failure: Callable[[str, str, int], None],
        monotonic: Callable[[], float] = time.monotonic,
        max_backoff_s: float = 30.0,
    ) -> None:
        keys = [device.key for device in devices]
        if len(set(keys)) != len(keys):
            raise ValueError(f"device keys must be unique: {keys}")
        if any(device.interval_s <= 0 for device in devices):
            raise ValueError("poll intervals must be positive")
        self.bus = bus
        self.devices = tuple(devices)
        self._on_values = on_values
        self._on_failure = on_failure
        self._monotonic = monotonic
        self._max_backoff_s = max_backoff_s
        self.stats = {device.key: DevicePollStats() for device in devices}

    def backoff_s(self, device: PolledDevice, failures: int) -> float:
        """Delay before asking a device again after its nth consecutive failure."""
        return min(max(self._max_backoff_s, device.interval_s), device.interval_s * 2.0 ** min(failures, 30))

    async def run(self) -> None:
        """Poll until cancelled."""
        if not self.devices:
            await asyncio.Event().wait()  # nothing to poll: idle until cancelled, like a busy poller
            return
        now = self._monotonic()
        # (due time, index): the index keeps the configured order among equal due times.
        due = [(now, index) for index in range(len(self.devices))]
        heapq.heapify(due)
        while True:
            at, index = heapq.heappop(due)
            delay = at - self._monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            device = self.devices[index]
            ok = await self._poll(device)
            now = self._monotonic()
            if ok:
                # Keep the cadence, but after falling behind by a whole interval (the bus
                # was busy) poll once now rather than in a burst of missed polls.
                next_at = max(at + device.interval_s, now)
            else:
                next_at = now + self.backoff_s(device, self.stats[device.key].consecutive_failures)
            heapq.heappush(due, (next_at, index))

    async def _poll(self, device: PolledDevice) -> bool:
        stats = self.stats[device.key]
        stats.polls += 1
        # A device that just failed gets no retries: a silent one would cost a timeout per retry.
        retries = 0 if stats.consecutive_failures else None
        try:
            values = await self.bus.read(device.unit_id, device.points, retries=retries)
        except ModbusReadError as err:
            stats.failures += 1
            stats.consecutive_failures += 1
            stats.last_error = err.reason
            if stats.consecutive_failures == 1:
                log.warning("%s (unit %d): %s", device.key, device.unit_id, err.reason)
            self._call(self._on_failure, device.key, err.reason, stats.consecutive_failures)
            return False
        if stats.consecutive_failures:
            log.info("%s (unit %d) answers again after %d failures", device.key, device.unit_id,
                     stats.consecutive_failures)
        stats.consecutive_failures = 0
        stats.last_ok = self._monotonic()
        stats.last_error = ""
        self._call(self._on_values, device.key, values)
        return True

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # one bad consumer must not stop the polling of the whole bus
            log.exception("%s callback failed for %s", callback, args[0])
