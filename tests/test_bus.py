"""The in-process bus: routing by type, bounded queues, drop policies, statistics."""

from __future__ import annotations

import asyncio

import pytest

from edge.bus import Bus, DropPolicy
from edge.events import DeviceStatus, Reading


def reading(i: int) -> Reading:
    return Reading("d", "co2", float(i), "ppm", float(i))


async def test_routes_by_type_and_counts_unrouted() -> None:
    bus = Bus()
    readings = bus.subscribe("r", (Reading,))
    statuses = bus.subscribe("s", (DeviceStatus,))
    bus.publish(reading(1))
    bus.publish(DeviceStatus("d", True, 0.0))
    bus.publish("not an event")
    assert (await readings.get()).value == 1.0
    assert (await statuses.get()).online is True
    assert readings.get_nowait() is None
    assert bus.stats()["unrouted"] == 1 and bus.stats()["published"] == 3


@pytest.mark.parametrize(("policy", "kept"), [(DropPolicy.DROP_OLDEST, [7, 8, 9]),
                                              (DropPolicy.DROP_NEWEST, [0, 1, 2])])
async def test_full_queue_applies_its_policy(policy: DropPolicy, kept: list[int]) -> None:
    bus = Bus()
    sub = bus.subscribe("slow", (Reading,), maxsize=3, policy=policy)
    for i in range(10):
        bus.publish(reading(i))
    got = [int((await sub.get()).value) for _ in range(3)]
    assert got == kept
    stats = bus.stats()["subscribers"][0]
    assert stats["dropped"] == 7 and stats["delivered"] == 3 and stats["max_depth"] == 3


async def test_a_slow_subscriber_does_not_affect_a_fast_one() -> None:
    bus = Bus()
    slow = bus.subscribe("slow", (Reading,), maxsize=1)
    fast = bus.subscribe("fast", (Reading,), maxsize=100)
    for i in range(50):
        bus.publish(reading(i))
    assert slow.stats.dropped == 49 and fast.stats.dropped == 0 and fast.stats.depth == 50


async def test_waiting_subscriber_wakes_on_publish_and_close_stops_delivery() -> None:
    bus = Bus()
    sub = bus.subscribe("w", (Reading,))
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish(reading(5))
    assert (await asyncio.wait_for(waiter, 1)).value == 5.0
    sub.close()
    bus.publish(reading(6))
    assert sub.get_nowait() is None
    with pytest.raises(ValueError):
        bus.subscribe("bad", (Reading,), maxsize=0)


async def test_kept_types_are_never_dropped_and_come_first() -> None:
    bus = Bus()
    sub = bus.subscribe("mixed", (Reading, DeviceStatus), maxsize=2, keep=(DeviceStatus,))
    for i in range(5):
        bus.publish(reading(i))
        bus.publish(DeviceStatus(f"d{i}", True, float(i)))
    got = sub.take()
    assert [e.device_id for e in got[:5]] == ["d0", "d1", "d2", "d3", "d4"]
    assert [int(e.value) for e in got[5:]] == [3, 4]
    assert sub.stats.dropped == 3 and sub.stats.delivered == 7 and sub.stats.depth == 0


async def test_take_returns_at_most_limit_in_order_and_wait_wakes() -> None:
    bus = Bus()
    sub = bus.subscribe("batch", (Reading,), maxsize=100)
    for i in range(10):
        bus.publish(reading(i))
    assert [int(e.value) for e in sub.take(4)] == [0, 1, 2, 3]
    assert [int(e.value) for e in sub.take(100)] == list(range(4, 10))
    assert sub.take(5) == [] and sub.stats.depth == 0 and sub.stats.delivered == 10
    waiter = asyncio.create_task(sub.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    bus.publish(reading(11))
    await asyncio.wait_for(waiter, 1)


async def test_a_late_subscriber_gets_events_of_types_already_routed() -> None:
    bus = Bus()
    early = bus.subscribe("early", (Reading,))
    bus.publish(reading(1))
    late = bus.subscribe("late", (Reading,))
    bus.publish(reading(2))
    late.close()
    bus.publish(reading(3))
    assert [int(e.value) for e in early.take()] == [1, 2, 3]
    assert [int(e.value) for e in late.take()] == [2]


async def test_a_signal_subscriber_keeps_one_wake_up_and_counts_no_drops() -> None:
    bus = Bus()
    sub = bus.subscribe("waker", (Reading,), maxsize=1, policy=DropPolicy.SIGNAL)
    for i in range(100):
        bus.publish(reading(i))
    await sub.wait()
    assert len(sub.take()) == 1 and sub.stats.dropped == 0
