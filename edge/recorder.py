"""Write readings from the bus to the store in batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge.bus import Bus, DropPolicy
from edge.disk_guard import DiskGuard
from edge.events import Reading
from edge.store import Store

log = logging.getLogger(__name__)


class Recorder:
    """Service: batch readings (size or age, whichever first) into store transactions."""

    name = "recorder"

    def __init__(self, bus: Bus, store: Store, batch_max: int = 500, flush_s: float = 1.0,
                 guard: DiskGuard | None = None) -> None:
        # Subscribed at construction, so readings published before run() are kept.
        self._sub = bus.subscribe("recorder", (Reading,), maxsize=20_000,
                                  policy=DropPolicy.DROP_OLDEST)
        self._store = store
        self._batch_max = batch_max
        self._flush_s = flush_s
        self.recorded = 0
        self.dropped: dict[str, int] = {}  # readings not written, by reason ('disk_full')
        self._guard = guard
        self._disk_full = False  # inside a critical-disk episode (logged once per episode)

    async def run(self, ready: Callable[[], None]) -> None:
        """Record until cancelled; flush what is buffered on the way out."""
        ready()
        loop = asyncio.get_running_loop()
        batch: list[Reading] = []
        try:
            while True:
                await self._sub.wait()
                deadline = loop.time() + self._flush_s
                batch += self._sub.take(self._batch_max)
                while len(batch) < self._batch_max and (remaining := deadline - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(remaining):
                            await self._sub.wait()
                    except TimeoutError:
                        break
                    batch += self._sub.take(self._batch_max - len(batch))
                # Hand the batch over before awaiting: if we are cancelled mid-write the
                # store still finishes it, and the flush below must not write it twice.
                pending, batch = batch, []
                if self._disk_critical(pending):
                    continue
                self.recorded += len(pending)  # handed over = written (the store shields it)
                await self._store.add_readings(pending)
        finally:
            batch += self._sub.take()
            if batch and not self._disk_critical(batch):
                await self._store.add_readings(batch)
                self.recorded += len(batch)

    def _disk_critical(self, readings: list[Reading]) -> bool:
        """Degraded mode: with the disk nearly full readings are dropped (counted), events still kept."""
        if self._guard is None:
            return False
        if self._guard.check() != "critical":
            if self._disk_full:
                log.info("recorder: disk space is back; readings are stored again")
            self._disk_full = False
            return False
        self.dropped["disk_full"] = self.dropped.get("disk_full", 0) + len(readings)
        self._guard.count_drop("readings", len(readings))
        if not self._disk_full:
            log.error("recorder: disk nearly full; readings are dropped until space is freed")
        self._disk_full = True
        return True
