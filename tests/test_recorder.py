"""The recorder: batches readings into the store; a stop at any moment loses none, doubles none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.bus import Bus
from edge.events import Reading
from edge.recorder import Recorder
from edge.store import Store
from tests.conftest import cancel_and_wait


@pytest.mark.parametrize("stop_after_s", [0.0, 0.001, 0.005, 0.02, 0.2])
async def test_cancel_at_any_moment_records_every_reading_exactly_once(
    tmp_path: Path, stop_after_s: float
) -> None:
    store = await Store.open(tmp_path)
    bus = Bus()
    recorder = Recorder(bus, store, batch_max=50, flush_s=0.01)
    for i in range(2000):
        bus.publish(Reading("d", "co2", float(i), "ppm", float(i)))
    task = asyncio.create_task(recorder.run(lambda: None))
    await asyncio.sleep(stop_after_s)
    await cancel_and_wait(task)
    stats = await store.stats()
    await store.close()
    assert stats["readings"] == 2000
    assert recorder.recorded == 2000


async def test_a_partial_batch_is_written_after_flush_s(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    bus = Bus()
    recorder = Recorder(bus, store, batch_max=100, flush_s=0.05)
    task = asyncio.create_task(recorder.run(lambda: None))
    for i in range(250):  # two full batches at once, then a trickle
        bus.publish(Reading("d", "co2", float(i), "ppm", float(i)))
    await asyncio.sleep(0.01)
    bus.publish(Reading("d", "co2", 250.0, "ppm", 250.0))
    async with asyncio.timeout(5):
        while (await store.stats())["readings"] < 251:
            await asyncio.sleep(0.01)
    await cancel_and_wait(task)
    await store.close()
    assert recorder.recorded == 251
