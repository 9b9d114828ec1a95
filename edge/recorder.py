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
        batch: list[Reading] = []
        try:
            while True:
                batch.append(await self._sub.get())
                deadline = asyncio.get_running_loop().time() + self._flush_s
                while len(batch) < self._batch_max:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    try:
                        async with asyncio.timeout(remaining):
                            batch.append(await self._sub.get())
                    except TimeoutError:
                        break
                # Hand the batch over before awaiting: if we are cancelled mid-write the
                # store still finishes it, and the flush below must not write it twice.
                pending, batch = batch, []
                self.recorded += len(pending)  # handed over = written (the store shields it)
                await self._store.add_readings(pending)
        finally:
            while (item := self._sub.get_nowait()) is not None:
                batch.append(item)
            if batch:
                await self._store.add_readings(batch)
                self.recorded += len(batch)
