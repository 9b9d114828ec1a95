"""Write readings from the bus to the store in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.bus import Bus, DropPolicy
from edge.events import Reading
from edge.store import Store


class Recorder:
    """Service: batch readings (size or age, whichever first) into store transactions."""

    name = "recorder"

    def __init__(self, bus: Bus, store: Store, batch_max: int = 500, flush_s: float = 1.0) -> None:
        # Subscribed at construction, so readings published before run() are kept.
        self._sub = bus.subscribe("recorder", (Reading,), maxsize=20_000,
                                  policy=DropPolicy.DROP_OLDEST)
        self._store = store
        self._batch_max = batch_max
        self._flush_s = flush_s
        self.recorded = 0

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
                self.recorded += len(pending)  # handed over = written (the store shields it)
                await self._store.add_readings(pending)
        finally:
            batch += self._sub.take()
            if batch:
                await self._store.add_readings(batch)
                self.recorded += len(batch)
