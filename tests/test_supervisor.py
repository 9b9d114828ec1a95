"""The supervisor: ordered start, restart with backoff, the budget, reverse stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from edge.backoff import Backoff
from edge.errors import RestartBudgetExhausted, ServiceStuck
from edge.supervisor import RestartPolicy, Supervisor
from tests.conftest import cancel_and_wait

FAST = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.01, backoff_max_s=0.05,
                     shutdown_timeout_s=2.0, ready_timeout_s=2.0)


class Recorded:
    """A service that logs what happens to it into a shared journal."""

    def __init__(self, name: str, journal: list[str], crashes: int = 0,
                 ready_delay: float = 0.0) -> None:
        self.name = name
        self.journal = journal
        self.crashes_left = crashes
        self.ready_delay = ready_delay

    async def run(self, ready: Callable[[], None]) -> None:
        self.journal.append(f"start {self.name}")
        if self.crashes_left:
            self.crashes_left -= 1
            raise RuntimeError(f"{self.name} broke")
        await asyncio.sleep(self.ready_delay)
        ready()
        self.journal.append(f"ready {self.name}")
        try:
            await asyncio.Event().wait()
        finally:
            self.journal.append(f"stop {self.name}")


async def test_starts_in_order_after_readiness_and_stops_in_reverse() -> None:
    journal: list[str] = []
    services = [Recorded("store", journal, ready_delay=0.05), Recorded("link", journal),
                Recorded("source", journal)]
    sup = Supervisor(services, FAST)
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    sup.stop()
    await asyncio.wait_for(task, 3)
    assert journal == ["start store", "ready store", "start link", "ready link",
                       "start source", "ready source",
                       "stop source", "stop link", "stop store"]
    assert [s["state"] for s in sup.status()] == ["stopped"] * 3


async def test_crashing_service_is_restarted_and_others_keep_running() -> None:
    journal: list[str] = []
    flaky = Recorded("flaky", journal, crashes=2)
    sup = Supervisor([Recorded("steady", journal), flaky], FAST, rng=lambda: 0.5)
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    sup.stop()
    await asyncio.wait_for(task, 3)
    assert journal.count("start flaky") == 3 and journal.count("start steady") == 1
    state = sup.states["flaky"]
    assert state.restarts == 2 and "flaky broke" in state.last_error


async def test_budget_exhausted_ends_the_run_and_stops_the_rest() -> None:
    journal: list[str] = []
    sup = Supervisor([Recorded("steady", journal), Recorded("doomed", journal, crashes=99)], FAST)
    with pytest.raises(RestartBudgetExhausted) as caught:
        await asyncio.wait_for(sup.run(), 5)
    assert caught.value.service == "doomed" and caught.value.restarts == FAST.max_restarts + 1
    assert journal.count("start doomed") == FAST.max_restarts + 1
    assert "stop steady" in journal
    assert sup.states["doomed"].state == "failed"


class Stubborn:
    name = "stubborn"

    def __init__(self) -> None:
        self.ignored = 0
        self.release = False

    async def run(self, ready: Callable[[], None]) -> None:
        ready()
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if self.release:
                    raise
                self.ignored += 1  # swallows cancels, as a buggy library might


async def test_stop_recancels_and_is_bounded_by_the_shutdown_timeout() -> None:
    stubborn = Stubborn()
    sup = Supervisor([stubborn], RestartPolicy(shutdown_timeout_s=0.8))
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    t0 = time.monotonic()
    sup.stop()
    await asyncio.wait_for(task, 3)
    assert time.monotonic() - t0 < 1.5
    assert stubborn.ignored >= 2  # the cancel was sent again, not just once
    assert sup.states["stubborn"].state != "stopped"
    stubborn.release = True
    for pending in asyncio.all_tasks():
        if pending.get_name() == "stubborn":
            await cancel_and_wait(pending)


def test_restart_delays_double_with_jitter_inside_the_cap() -> None:
    low = Backoff(1.0, 8.0, rng=lambda: 0.0)
    high = Backoff(1.0, 8.0, rng=lambda: 1.0)
    assert [low.next_delay() for _ in range(5)] == [0.5] * 5
    assert [high.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    high.reset()
    assert high.next_delay() == 1.0
    sup = Supervisor([], RestartPolicy(backoff_initial_s=1, backoff_max_s=4), rng=lambda: 1.0)
    from edge.supervisor import ServiceState

    state = ServiceState("x")
    delays = [sup._record_crash(state, RuntimeError()) for _ in range(4)]
    assert delays == [1.0, 2.0, 4.0, 4.0]


class FinishesAtOnce:
    """A service with nothing to do (e.g. no devices to take commands for)."""

    name = "idle"

    async def run(self, ready: Callable[[], None]) -> None:
        ready()


async def test_a_service_that_finishes_does_not_stop_the_others() -> None:
    journal: list[str] = []
    sup = Supervisor([FinishesAtOnce(), Recorded("camera", journal)], FAST)
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.sleep(0.2)
    assert not task.done() and "stop camera" not in journal
    assert [s["state"] for s in sup.status()] == ["finished", "running"]
    sup.stop()
    await asyncio.wait_for(task, 3)
    assert journal[-1] == "stop camera"


async def test_swap_replaces_services_in_place_while_the_rest_keep_running() -> None:
    journal: list[str] = []
    sup = Supervisor([Recorded("sink", journal), Recorded("old", journal), Recorded("tail", journal)], FAST)
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    await sup.swap(["old"], [Recorded("new", journal), Recorded("extra", journal)])
    assert journal[-5:] == ["stop old", "start new", "ready new", "start extra", "ready extra"]
    assert [s["name"] for s in sup.status()] == ["sink", "tail", "new", "extra"]
    assert all(s["state"] == "running" for s in sup.status())
    with pytest.raises(ValueError):
        await sup.swap([], [Recorded("sink", journal)])
    sup.stop()
    await asyncio.wait_for(task, 3)
    # The new services took the old one's place: they stop before the sink, after the tail.
    assert journal[-4:] == ["stop tail", "stop extra", "stop new", "stop sink"]
    assert not task.cancelled() and task.exception() is None


async def test_a_swapped_in_service_gets_the_same_restart_budget() -> None:
    journal: list[str] = []
    sup = Supervisor([Recorded("steady", journal)], FAST)
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    await sup.swap([], [Recorded("flaky", journal, crashes=1)])
    async with asyncio.timeout(2):
        while sup.states["flaky"].state != "running":
            await asyncio.sleep(0.01)
    assert sup.states["flaky"].restarts == 1
    with pytest.raises(RestartBudgetExhausted):  # spent before it was ever ready
        await sup.swap([], [Recorded("doomed", journal, crashes=99)])
    with pytest.raises(RestartBudgetExhausted):  # and the run ends as for any other service
        await asyncio.wait_for(task, 5)
    assert journal.count("start doomed") == FAST.max_restarts + 1 and "stop steady" in journal


async def test_a_service_that_will_not_stop_is_not_replaced_by_a_second_copy() -> None:
    journal: list[str] = []
    stubborn = Stubborn()
    sup = Supervisor([stubborn], RestartPolicy(shutdown_timeout_s=0.5, ready_timeout_s=2.0))
    started = asyncio.Event()
    task = asyncio.create_task(sup.run(started.set))
    await asyncio.wait_for(started.wait(), 2)
    replacement = Recorded("stubborn", journal)
    with pytest.raises(ServiceStuck, match="stubborn"):
        await sup.swap(["stubborn"], [replacement])
    assert "start stubborn" not in journal  # the old one still runs: no second copy beside it
    assert sup.states["stubborn"].state == "stuck"
    stubborn.release = True  # the shutdown tries it again and now it goes
    sup.stop()
    await asyncio.wait_for(task, 3)
    assert sup.states["stubborn"].state == "stopped"


async def test_swap_refuses_when_not_running() -> None:
    sup = Supervisor([], FAST)
    with pytest.raises(RuntimeError):
        await sup.swap([], [])
