"""What the uplink reports about itself: backlog per class, deliveries, drops, last PUBACK."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RATE_WINDOW_S = 10.0


@dataclass
class UplinkMetrics:
    """Counters of one gateway's uplink, for the health page, the console and the demo summary."""

    delivered: dict[str, int] = field(default_factory=dict)  # since start, per class
    replayed: int = 0  # of those, sent with historical: true
    last_puback_at: float | None = None  # wall clock
    connected: bool = False
    outbox: dict[str, Any] = field(default_factory=dict)  # the store's outbox_stats(), refreshed
    disk_low: bool = False  # free space under store.min_free_mb: only safety events are queued
    dropped_disk: dict[str, int] = field(default_factory=dict)  # per class, while disk_low
    _recent: deque[tuple[float, int]] = field(default_factory=deque)

    def record_delivery(self, msg_class: str, count: int, historical: bool, now: float) -> None:
        """Count messages the broker acknowledged."""
        self.delivered[msg_class] = self.delivered.get(msg_class, 0) + count
        if historical:
            self.replayed += count
        self.last_puback_at = now
        mono = time.monotonic()
        self._recent.append((mono, count))
        while self._recent and mono - self._recent[0][0] > RATE_WINDOW_S:
            self._recent.popleft()

    @property
    def delivered_per_s(self) -> float:
        """Messages acknowledged per second over the last few seconds."""
        mono = time.monotonic()
        recent = sum(n for t, n in self._recent if mono - t <= RATE_WINDOW_S)
        return recent / RATE_WINDOW_S

    @property
    def backlog(self) -> int:
        """Undelivered messages of every class (as of the last refresh)."""
        classes = self.outbox.get("classes", {})
        return sum(int(c.get("count", 0)) for c in classes.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready picture."""
        return {"connected": self.connected, "delivered": dict(self.delivered), "replayed": self.replayed,
                "delivered_per_s": round(self.delivered_per_s, 1), "last_puback_at": self.last_puback_at,
                "backlog": self.backlog, "outbox": self.outbox, "disk_low": self.disk_low,
                "dropped_disk": dict(self.dropped_disk)}
