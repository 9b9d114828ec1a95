"""Bounded in-process pub/sub of typed events, with a drop policy per subscriber."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

_LOG_DROPS_AT = frozenset({1, 100, 10_000, 1_000_000})


class DropPolicy(StrEnum):
    """What a full subscriber queue gives up."""

    DROP_OLDEST = "drop_oldest"  # keep the newest (live views, frames)
    DROP_NEWEST = "drop_newest"  # keep what was queued first (ordered consumers)
    SIGNAL = "signal"  # a wake-up: only that something arrived matters; one is kept, none logged


@dataclass
class SubscriberStats:
    """Counters of one subscriber, for health and metrics."""

    name: str
    delivered: int = 0
    dropped: int = 0
    depth: int = 0
    max_depth: int = 0
    maxsize: int = 0


class Subscription:
    """One subscriber's bounded queue; iterate it to receive events.

    Events of the `keep` types go to a separate unbounded queue that is never dropped
    and is served first (safety events must not wait behind, or be pushed out by, readings).
    """

    def __init__(
        self, bus: Bus, name: str, types: tuple[type, ...], maxsize: int, policy: DropPolicy,
        keep: tuple[type, ...] = (),
    ) -> None:
        self._bus = bus
        self.name = name
        self.types = types
        self.keep = keep
        self.policy = policy
        self._queue: collections.deque[Any] = collections.deque()
        self._kept: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self.stats = SubscriberStats(name=name, maxsize=maxsize)

    def _offer(self, event: Any) -> None:
        if self.keep and isinstance(event, self.keep):
            self._kept.append(event)
        elif self.policy is DropPolicy.SIGNAL:
            if not self._queue:
                self._queue.append(event)
        elif len(self._queue) < self._maxsize:
            self._queue.append(event)
        else:
            self._drop_for(event)
        stats = self.stats
        depth = stats.depth = len(self._queue) + len(self._kept)
        if depth > stats.max_depth:
            stats.max_depth = depth
        self._ready.set()

    def _drop_for(self, event: Any) -> None:
        self.stats.dropped += 1
        if self.stats.dropped in _LOG_DROPS_AT:
            # Log at growing intervals, not once per dropped event.
            log.warning("bus subscriber %s is full: %d dropped", self.name, self.stats.dropped)
        if self.policy is DropPolicy.DROP_OLDEST:
            self._queue.popleft()
            self._queue.append(event)

    def _pop(self) -> Any:
        event = self._kept.popleft() if self._kept else self._queue.popleft()
        self.stats.depth -= 1
        self.stats.delivered += 1
        return event

    async def wait(self) -> None:
        """Wait until at least one event is queued."""
        while not (self._queue or self._kept):
            self._ready.clear()
            await self._ready.wait()

    async def get(self) -> Any:
        """Wait for and return the next event."""
        await self.wait()
        return self._pop()

    def get_nowait(self) -> Any | None:
        """Return the next event if one is queued, else None."""
        if not (self._queue or self._kept):
            return None
        return self._pop()

    def take(self, limit: int | None = None) -> list[Any]:
        """Return up to limit (default all) queued events at once, kept ones first; never waits."""
        if limit is None:
            limit = len(self._kept) + len(self._queue)
        out: list[Any] = []
        while self._kept and len(out) < limit:
            out.append(self._kept.popleft())
        queue = self._queue
        count = min(limit - len(out), len(queue))
        if count == len(queue):
            out.extend(queue)
            queue.clear()
        else:
            out.extend(queue.popleft() for _ in range(count))
        self.stats.depth = len(queue) + len(self._kept)
        self.stats.delivered += len(out)
        return out

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            yield await self.get()

    def close(self) -> None:
        """Stop receiving events."""
        self._bus._remove(self)


class Bus:
    """Fan events out to subscribers by type; publishing never blocks."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._routes: dict[type, tuple[Subscription, ...]] = {}  # by exact type, built lazily
        self.published = 0
        self.unrouted = 0

    def subscribe(
        self,
        name: str,
        types: tuple[type, ...],
        maxsize: int = 1000,
        policy: DropPolicy = DropPolicy.DROP_OLDEST,
        keep: tuple[type, ...] = (),
    ) -> Subscription:
        """Register a subscriber for events that are instances of any of types.

        maxsize and policy bound the queue; events of the keep types are never dropped.
        """
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        sub = Subscription(self, name, types, maxsize, policy, keep)
        self._subs.append(sub)
        self._routes.clear()
        return sub

    def publish(self, event: object) -> None:
        """Offer an event to every matching subscriber (a full queue applies its policy)."""
        self.published += 1
        kind = type(event)
        subs = self._routes.get(kind)
        if subs is None:
            subs = self._routes[kind] = tuple(s for s in self._subs if issubclass(kind, s.types))
        if not subs:
            self.unrouted += 1
        for sub in subs:
            sub._offer(event)

    def stats(self) -> dict[str, Any]:
        """Return bus-wide and per-subscriber counters."""
        return {
            "published": self.published,
            "unrouted": self.unrouted,
            "subscribers": [vars(s.stats).copy() for s in self._subs],
        }

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._routes.clear()
