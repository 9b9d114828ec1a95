"""Run services in order under one supervisor; restart crashes inside a budget."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edge.clock import Clock, SystemClock
from edge.errors import RestartBudgetExhausted, ServiceStuck

log = logging.getLogger(__name__)


class Service(Protocol):
    """A long-running part of the gateway; calls ready() once it can do its job."""

    name: str

    async def run(self, ready: Callable[[], None]) -> None:
        """Run until cancelled; raise to crash (the supervisor restarts it)."""
        ...


@dataclass(frozen=True)
class RestartPolicy:
    """How often and how fast crashed services come back."""

    max_restarts: int = 5
    window_s: float = 300.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    shutdown_timeout_s: float = 5.0
    ready_timeout_s: float = 10.0


@dataclass
class ServiceState:
    """What the supervisor knows about one service, for health reports."""

    name: str
    state: str = "pending"
    restarts: int = 0
    last_error: str = ""
    crash_times: collections.deque[float] = field(default_factory=collections.deque)


class Supervisor:
    """Start services in the given order, keep them running, stop them in reverse."""

    def __init__(
        self,
        services: list[Service],
        policy: RestartPolicy,
        clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._services = services
        self._policy = policy
        self._clock = clock or SystemClock()
        self._rng = rng
        self._stop = asyncio.Event()
        self.states = {s.name: ServiceState(s.name) for s in services}
        # While run() runs: every task in start order, and a wake-up for the wait loop
        # when swap() adds or removes one.
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._started = False

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask run() to stop every service and return."""
        self._stop.set()

    async def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Run until stop() or a budget is exhausted (RestartBudgetExhausted is raised)."""
        tasks = self._tasks
        try:
            for service in self._services:
                if self._stop.is_set():
                    return
                ready = asyncio.Event()
                task = asyncio.create_task(self._keep_running(service, ready), name=service.name)
                tasks.append(task)
                self._running.add(task)
                await self._wait_ready(service, task, ready)
            self._started = True
            if on_started is not None:
                on_started()
            stop_wait: asyncio.Task[object] = asyncio.create_task(self._stop.wait())
            # A service that finished on its own (nothing to do) leaves the others running;
            # only stop() or an exhausted restart budget ends the run.
            try:
                while True:
                    self._changed.clear()
                    changed_wait = asyncio.create_task(self._changed.wait())
                    try:
                        done, _ = await asyncio.wait({stop_wait, changed_wait, *self._running},
                                                     return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        changed_wait.cancel()
                    for finished in done - {stop_wait, changed_wait}:
                        if finished not in self._running:
                            continue  # stopped by swap()
                        self._running.discard(finished)
                        finished.result()  # re-raises RestartBudgetExhausted
                    if stop_wait in done:
                        break
            finally:
                stop_wait.cancel()
        finally:
            self._started = False
            stopped: set[asyncio.Task[None]] = set()
            # Again while a swap() that was under way added more.
            while pending := [t for t in tasks if t not in stopped]:
                stopped.update(pending)
                await self._shutdown(pending)

    async def swap(self, remove: Sequence[str], add: Sequence[Service]) -> None:
        """While running: stop the named services, then start `add` in their place (same policy).

        The new services take the position of the first removed one (or go last), so a
        later shutdown still stops sources before the sinks they feed.
        """
        if not self._started or self._stop.is_set():
            raise RuntimeError("the supervisor is not running")
        names = [t.get_name() for t in self._tasks]
        taken = set(names) - set(remove)
        for service in add:
            if service.name in taken:
                raise ValueError(f"a service named {service.name!r} is already running")
            taken.add(service.name)
        doomed = [t for t in self._tasks if t.get_name() in remove]
        at = self._tasks.index(doomed[0]) if doomed else len(self._tasks)
        self._running.difference_update(doomed)  # their end is not a crash for run() to report
        self._changed.set()
        await self._stop_tasks(list(reversed(doomed)))
        # One that ignored its cancellation is still running: starting its replacement would put
        # two of them on one serial port or stream. It stays tracked, so the shutdown retries it.
        stuck = [t for t in doomed if not t.done()]
        if stuck:
            for task in stuck:
                self.states[task.get_name()].state = "stuck"
            raise ServiceStuck([t.get_name() for t in stuck])
        for task in doomed:
            self._tasks.remove(task)
            self.states.pop(task.get_name(), None)
        for offset, service in enumerate(add):
            if self._stop.is_set():
                return
            self.states[service.name] = ServiceState(service.name)
            ready = asyncio.Event()
            task = asyncio.create_task(self._keep_running(service, ready), name=service.name)
            self._tasks.insert(at + offset, task)
            self._running.add(task)
            self._changed.set()
            await self._wait_ready(service, task, ready)

    async def _wait_ready(
        self, service: Service, task: asyncio.Task[None], ready: asyncio.Event
    ) -> None:
        ready_wait = asyncio.create_task(ready.wait())
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {task, ready_wait, stop_wait},
                timeout=self._policy.ready_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready_wait.cancel()
            stop_wait.cancel()
        if task in done:
            task.result()
        elif not done:
            log.warning(
                "service %s not ready after %.0fs; starting the rest anyway",
                service.name, self._policy.ready_timeout_s,
            )

    async def _keep_running(self, service: Service, ready: asyncio.Event) -> None:
        state = self.states[service.name]

        def mark_ready() -> None:
            state.state = "running"
            ready.set()

        while True:
            state.state = "starting"
            try:
                await service.run(mark_ready)
            except asyncio.CancelledError:
                state.state = "stopped"
                raise
            except Exception as err:  # the supervisor is the one place that catches all
                delay = self._record_crash(state, err)
                state.restarts += 1
                state.state = "restarting"
                log.exception("service %s crashed; restart %d in %.1fs",
                              service.name, state.restarts, delay)
                await asyncio.sleep(delay)
            else:
                state.state = "finished"
                log.info("service %s finished", service.name)
                return

    def _record_crash(self, state: ServiceState, err: Exception) -> float:
        """Note a crash; return the backoff delay or raise when the budget is spent."""
        now = self._clock.monotonic()
        state.last_error = f"{type(err).__name__}: {err}"
        state.crash_times.append(now)
        while state.crash_times and now - state.crash_times[0] > self._policy.window_s:
            state.crash_times.popleft()
        recent = len(state.crash_times)
        if recent > self._policy.max_restarts:
            state.state = "failed"
            raise RestartBudgetExhausted(state.name, recent, self._policy.window_s) from err
        ceiling = min(self._policy.backoff_max_s, self._policy.backoff_initial_s * 2 ** (recent - 1))
        # Equal jitter: at least half the ceiling, so restarts never spin.
        return float(ceiling / 2 + self._rng() * ceiling / 2)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        # Reverse start order: sources stop before the sinks that drain them.
        await self._stop_tasks(list(reversed(tasks)))

    async def _stop_tasks(self, tasks: list[asyncio.Task[None]]) -> None:
        """Cancel tasks one by one in the given order, within one shutdown timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.shutdown_timeout_s
        for task in tasks:
            done: set[asyncio.Task[None]] = set()
            # Cancel again until it ends: on Python 3.11 asyncio.wait_for (used inside
            # client libraries) can swallow a cancel that races with its result.
            while not done and (remaining := deadline - loop.time()) > 0:
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=min(remaining, 0.25))
            if not done:
                log.error("service %s did not stop within the shutdown timeout", task.get_name())
            elif not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if not isinstance(exc, RestartBudgetExhausted):
                    log.error("service %s failed while stopping: %s", task.get_name(), exc)

    def status(self) -> list[dict[str, object]]:
        """Return each service's state, restart count and last error."""
        return [
            {"name": s.name, "state": s.state, "restarts": s.restarts, "last_error": s.last_error}
            for s in self.states.values()
        ]
