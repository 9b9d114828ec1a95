"""Free disk space of the data dir as a level, and what degraded mode dropped because of it."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Level = Literal["ok", "low", "critical"]
MB = 1024 * 1024
CACHE_S = 5.0  # the level is read per snapshot and per readings batch: statfs at most this often


class DiskGuard:
    """Degraded mode below store.min_free_mb: snapshots stop when low, readings when critical.

    Safety events and audit records are never refused here: losing them costs more than a full disk.
    """

    def __init__(self, data_dir: Path, min_free_mb: float,
                 free_bytes: Callable[[Path], int] | None = None,
                 monotonic: Callable[[], float] = time.monotonic, cache_s: float = CACHE_S) -> None:
        self.data_dir = data_dir
        self.min_free = int(min_free_mb * MB)
        self._free_bytes = free_bytes or (lambda path: shutil.disk_usage(path).free)  # a seam for tests
        self._monotonic = monotonic
        self._cache_s = cache_s
        self._cached: tuple[float, Level] | None = None
        self._lock = threading.Lock()  # snapshots are saved on worker threads
        self.dropped: dict[str, int] = {}  # what degraded mode refused: "snapshots", "readings"
        self.level: Level = "ok"  # the last level seen, for the health report

    def free(self) -> int | None:
        """Free bytes on the data dir's filesystem now (uncached); None when it cannot be read."""
        try:
            return int(self._free_bytes(self.data_dir))
        except OSError as err:
            log.warning("disk guard: cannot read free space of %s: %s", self.data_dir, err)
            return None

    def check(self) -> Level:
        """'ok', 'low' (free < min_free_mb) or 'critical' (free < min_free_mb / 4), cached briefly."""
        now = self._monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self._cache_s:
                return self._cached[1]
        level = self._level(self.free())
        with self._lock:
            self._cached = (now, level)
            if level != self.level:
                log.log(logging.WARNING if level != "ok" else logging.INFO,
                        "disk guard: free space on %s is %s (threshold %d MB)", self.data_dir, level,
                        self.min_free // MB)
            self.level = level
        return level

    def _level(self, free: int | None) -> Level:
        # Unreadable free space counts as ok: refusing data on a guess would be worse than a full disk.
        if free is None or not self.min_free or free >= self.min_free:
            return "ok"
        return "critical" if free < self.min_free / 4 else "low"

    def forget(self) -> None:
        """Drop the cached level, so the next check reads the disk again (after freeing space)."""
        with self._lock:
            self._cached = None

    def count_drop(self, what: str, n: int = 1) -> None:
        """Count n items of a kind ('snapshots', 'readings') refused in degraded mode."""
        with self._lock:
            self.dropped[what] = self.dropped.get(what, 0) + n

    def report(self) -> dict[str, object]:
        """Level, threshold and drop counters for the health report."""
        with self._lock:
            return {"level": self.level, "min_free_mb": self.min_free // MB, "dropped": dict(self.dropped)}
