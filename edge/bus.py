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


class DropPolicy(StrEnum):
    """What a full subscriber queue gives up."""

    DROP_OLDEST = "drop_oldest"  # keep the newest (live views, frames)
    DROP_NEWEST = "drop_newest"  # keep what was queued first (ordered consumers)


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
    """One subscriber's bounded queue; iterate it to receive events."""

    def __init__(
        self, bus: Bus, name: str, types: tuple[type, ...], maxsize: int, policy: DropPolicy
    ) -> None:
        self._bus = bus
        self.name = name
        self.types = types
        self.policy = policy
        self._queue: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self.stats = SubscriberStats(name=name, maxsize=maxsize)

    def _offer(self, event: Any) -> None:
        if len(self._queue) >= self._maxsize:
            self.stats.dropped += 1
            if self.policy is DropPolicy.DROP_NEWEST:
                return
            self._queue.popleft()
        self._queue.append(event)
        self.stats.depth = len(self._queue)
        self.stats.max_depth = max(self.stats.max_depth, self.stats.depth)
        self._ready.set()

    async def get(self) -> Any:
        """Wait for and return the next event."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        event = self._queue.popleft()
        self.stats.depth = len(self._queue)
        self.stats.delivered += 1
        return event

    def get_nowait(self) -> Any | None:
        """Return the next event if one is queued, else None."""
        if not self._queue:
            return None
        event = self._queue.popleft()
        self.stats.depth = len(self._queue)
        self.stats.delivered += 1
        return event

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
        self.published = 0
        self.unrouted = 0

    def subscribe(
        self,
        name: str,
        types: tuple[type, ...],
        maxsize: int = 1000,
        policy: DropPolicy = DropPolicy.DROP_OLDEST,
    ) -> Subscription:
        """Register a subscriber for events that are instances of any of types."""
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        sub = Subscription(self, name, types, maxsize, policy)
        self._subs.append(sub)
        return sub

    def publish(self, event: object) -> None:
        """Offer an event to every matching subscriber (a full queue applies its policy)."""
        self.published += 1
        matched = False
        for sub in self._subs:
            if isinstance(event, sub.types):
                matched = True
                before = sub.stats.dropped
                sub._offer(event)
                if sub.stats.dropped != before and sub.stats.dropped in (1, 100, 10_000):
                    # Log at growing intervals, not once per dropped event.
                    log.warning("bus subscriber %s is full: %d dropped", sub.name, sub.stats.dropped)
        if not matched:
            self.unrouted += 1

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
