"""The uplink's intake: occupancy and aggregated telemetry into the outbox, expiry, backlog figures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from edge.bus import Bus, DropPolicy
from edge.clock import Clock, SteadyWall
from edge.config_uplink import UplinkConfig
from edge.disk_guard import DiskGuard
from edge.events import Envelope, Occupancy, SafetyEvent, Severity
from edge.store import Store
from edge.store.outbox import limits_of
from edge.uplink import contract
from edge.uplink.metrics import UplinkMetrics

log = logging.getLogger(__name__)

RecordEvent = Callable[[SafetyEvent], Awaitable[Envelope]]
FLUSH_S = 0.5  # occupancy changes are written in small batches
STATS_S = 5.0
EXPIRE_S = 60.0
LATE_READINGS_S = 2.0  # the recorder commits readings within ~1 s: aggregate a closed interval later


class UplinkIntake:
    """Service: write occupancy and telemetry into the outbox, expire old rows, refresh the figures."""

    name = "uplink-intake"

    def __init__(self, config: UplinkConfig, store: Store, bus: Bus, clock: Clock,
                 metrics: UplinkMetrics, record_event: RecordEvent, guard: DiskGuard | None = None,
                 device_rooms: Mapping[str, str | None] | None = None) -> None:
        self.config = config
        self._device_rooms = dict(device_rooms or {})  # for readings stored without a room
        self._guard = guard  # the gateway's disk guard (store.min_free_mb); None: never low
        self._store = store
        self._clock = clock
        self.metrics = metrics
        self._record_event = record_event
        # Counts change often and the latest one matters most: drop the oldest if we lag.
        self._sub = bus.subscribe("uplink-intake", (Occupancy,), maxsize=10000, policy=DropPolicy.DROP_OLDEST)
        self._events_full = False
        self._steady = SteadyWall(clock)  # TTLs are measured on it, not on a clock that may jump

    async def run(self, ready: Callable[[], None]) -> None:
        """Follow the bus and the clock until cancelled."""
        self._store.configure_outbox(limits_of(self.config.outbox))
        await self._refresh()
        ready()
        interval = self.config.telemetry_interval_s
        next_stats = next_expire = time.monotonic()
        next_telemetry = self._next_boundary(interval)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_S):
                    await self._sub.wait()
            await self._flush_occupancy()
            mono = time.monotonic()
            if self._clock.now() >= next_telemetry:
                await self._aggregate(interval)
                next_telemetry = self._next_boundary(interval)
            if mono >= next_expire:
                next_expire = mono + EXPIRE_S
                expired = await self._store.outbox_expire(self._steady.now())
                if any(expired.values()):
                    log.info("uplink: expired undelivered messages: %s", expired)
            if mono >= next_stats:
                next_stats = mono + STATS_S
                await self._refresh()

    def _drop_for_disk(self, msg_class: str, count: int) -> None:
        drops = self.metrics.dropped_disk
        drops[msg_class] = drops.get(msg_class, 0) + count

    async def _aggregate(self, interval: float) -> None:
        # Each call covers a bounded stretch (the store thread stays responsive); after an
        # outage it takes several calls to catch up. On a nearly full disk the readings stay
        # in their table (issue: retention) and are aggregated once there is room again.
        if self.metrics.disk_low:
            return
        while True:
            added = await self._store.telemetry_aggregate(interval, self._clock.now() - LATE_READINGS_S,
                                                          self._device_rooms)
            if not added:
                return
            log.debug("uplink: %d telemetry messages queued", added)
            await self._flush_occupancy()

    def _next_boundary(self, interval: float) -> float:
        # The first moment a whole interval (plus the recorder's lag) can be aggregated.
        now = self._clock.now()
        return math.floor(now / interval) * interval + interval + LATE_READINGS_S

    async def _flush_occupancy(self) -> None:
        bodies = []
        for event in self._sub.take(1000):
            if isinstance(event, Occupancy):
                bodies.append(contract.dumps(contract.occupancy_body(
                    event.room_id, event.count, event.ts, event.camera_id, event.zone_id)))
        if bodies and self.metrics.disk_low:
            self._drop_for_disk("occupancy", len(bodies))
        elif bodies:
            dropped = await self._store.outbox_add("occupancy", bodies, self._clock.now())
            if dropped:
                log.warning("uplink: occupancy outbox full; %d oldest dropped", dropped)

    async def _check_disk(self) -> None:
        guard = self._guard
        if guard is None:
            return
        low = await asyncio.to_thread(guard.check) != "ok"
        if low != self.metrics.disk_low:
            self.metrics.disk_low = low
            log.log(logging.ERROR if low else logging.WARNING,
                    "uplink: free disk space on %s is %s: %s", guard.data_dir, "low" if low else "back",
                    "only safety events are queued now" if low else "queueing everything again")

    async def _refresh(self) -> None:
        await self._check_disk()
        stats = await self._store.outbox_stats(self._clock.now())
        self.metrics.outbox = stats
        full = bool(stats.get("classes", {}).get("event", {}).get("over_cap"))
        if full != self._events_full:
            # Safety events are never dropped: past their cap they are still accepted, and a
            # critical alert tells the guards that the platform is not getting them.
            self._events_full = full
            count = stats["classes"]["event"]["count"]
            log.log(logging.CRITICAL if full else logging.WARNING, "uplink: %d undelivered safety events, %s",
                    count, "over their cap" if full else "back under their cap")
            kind = "uplink_outbox_full" if full else "uplink_outbox_full_cleared"
            await self._record_event(SafetyEvent(kind, Severity.CRITICAL if full else Severity.INFO,
                                                 self._clock.now(), "gateway", None,
                                                 {"device_id": "gateway", "undelivered": count}))
