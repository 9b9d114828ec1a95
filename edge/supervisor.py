"""Run services in order under one supervisor; restart crashes inside a budget."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge.clock import Clock, SystemClock
from edge.errors import RestartBudgetExhausted

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

    def stop(self) -> None:
        """Ask run() to stop every service and return."""
        self._stop.set()

    async def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Run until stop() or a budget is exhausted (RestartBudgetExhausted is raised)."""
        tasks: list[asyncio.Task[None]] = []
        try:
            for service in self._services:
                if self._stop.is_set():
                    return
                ready = asyncio.Event()
                task = asyncio.create_task(self._keep_running(service, ready), name=service.name)
                tasks.append(task)
                await self._wait_ready(service, task, ready)
            if on_started is not None:
                on_started()
            stop_wait: asyncio.Task[object] = asyncio.create_task(self._stop.wait())
            # A service that finished on its own (nothing to do) leaves the others running;
            # only stop() or an exhausted restart budget ends the run.
            running = set(tasks)
            try:
                while True:
                    done, _ = await asyncio.wait({stop_wait, *running}, return_when=asyncio.FIRST_COMPLETED)
                    for finished in done - {stop_wait}:
                        finished.result()  # re-raises RestartBudgetExhausted
                        running.discard(finished)
                    if stop_wait in done:
                        break
            finally:
                stop_wait.cancel()
        finally:
            await self._shutdown(tasks)

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.shutdown_timeout_s
        # Reverse start order: sources stop before the sinks that drain them.
        for task in reversed(tasks):
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
