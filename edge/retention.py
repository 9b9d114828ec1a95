"""The retention service: old rows and snapshots go on a schedule; snapshots go first when disk is low."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.clock import Clock
from edge.config_ops import RetentionConfig
from edge.disk_guard import DiskGuard
from edge.errors import StoreError
from edge.store import Store
from edge.store.retention import TABLES

if TYPE_CHECKING:  # OpenCV is not needed to prune
    from edge.vision.snapshots import SnapshotStore

log = logging.getLogger(__name__)

DAY_S = 86400.0
FIRST_RUN_S = 60.0  # soon after start, but not in the middle of the start-up burst
DISK_CHECK_S = 60.0  # low disk is looked at more often than the hourly run
SNAPSHOTS_PER_STEP = 10  # deleted before free space is read again


class RetentionService:
    """Service: deletes rows past their retention (in batches) and frees disk from old snapshots."""

    name = "retention"

    def __init__(self, config: RetentionConfig, store: Store, snapshots: SnapshotStore | None,
                 clock: Clock, guard: DiskGuard | None = None, first_run_s: float = FIRST_RUN_S,
                 uplink: bool = True) -> None:
        self._config = config
        # With an uplink, events still queued for it are kept whatever their age; without one
        # nothing would ever send them, so they age out like the rest.
        self.uplink = uplink
        self.snapshots = snapshots  # a reload that adds the first camera sets it
        self._store = store
        self.snapshots = snapshots
        self._clock = clock
        self._guard = guard
        self._first_run_s = first_run_s
        self.last: dict[str, Any] | None = None  # the last run's result, for the health report

    async def run(self, ready: Callable[[], None]) -> None:
        """Run retention every interval_s (first after first_run_s); look at free disk every minute."""
        ready()
        tick = min(self._config.interval_s, DISK_CHECK_S)
        await asyncio.sleep(self._first_run_s)
        next_run = self._clock.monotonic()
        while True:
            if self._clock.monotonic() >= next_run:
                next_run = self._clock.monotonic() + self._config.interval_s  # a reload may change it
                try:
                    await self.run_once()
                except StoreError as err:  # a busy or failing disk: try again next interval
                    log.warning("retention run failed: %s", err)
                except Exception:  # a snapshot dir removed by hand, a root-owned file: not a crash loop
                    log.exception("retention run failed; trying again in %.0f s", self._config.interval_s)
            else:
                try:
                    await self.free_disk()
                except Exception:
                    log.exception("freeing disk space failed")
            await asyncio.sleep(tick)

    async def run_once(self) -> dict[str, Any]:
        """Delete what is past retention now; return {last_run_at, deleted: {table: rows}}."""
        now = self._clock.now()
        days = {"readings": self._config.readings_days, "events": self._config.events_days,
                "commands": self._config.commands_days, "audit": self._config.audit_days}
        deleted: dict[str, int] = {}
        for table in TABLES:
            deleted[table] = await self._store.prune(table, now - days[table] * DAY_S,
                                                     keep_queued=self.uplink)
        snapshots = 0
        if self.snapshots is not None:
            snapshots = await asyncio.to_thread(self.snapshots.prune)
        deleted["snapshots"] = snapshots + await self.free_disk()
        log.info("retention: deleted %s", ", ".join(f"{n} {what}" for what, n in deleted.items()))
        if any(deleted.values()):
            await self._store.append_audit("system", "retention.run", "store", deleted)
        self.last = {"last_run_at": now, "deleted": deleted}
        return self.last

    async def free_disk(self) -> int:
        """While disk space is low, delete the oldest snapshots until it is not; return how many."""
        guard, snapshots = self._guard, self.snapshots
        if guard is None or snapshots is None or not guard.min_free:
            return 0
        removed = 0
        while (free := await asyncio.to_thread(guard.free)) is not None and free < guard.min_free:
            step = await asyncio.to_thread(snapshots.drop_oldest, SNAPSHOTS_PER_STEP)
            if not step:
                break  # nothing left to free: readings and events are never deleted for space
            removed += step
        if removed:
            guard.forget()  # snapshots may be taken again at once, not after the cache expires
            log.warning("disk space low: deleted the %d oldest snapshots (%s MB free)", removed,
                        "?" if free is None else free // (1024 * 1024))
        return removed

    @property
    def config(self) -> RetentionConfig:
        """The retention periods in use."""
        return self._config

    def reconfigure(self, config: RetentionConfig) -> None:
        """Use new retention periods from the next run on (a config reload)."""
        self._config = config

    def report(self) -> dict[str, Any]:
        """The last run (last_run_at, deleted per table) or an empty dict before the first one."""
        return dict(self.last or {})
