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
