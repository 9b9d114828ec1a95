"""Time as a seam: services take a Clock so tests can drive time by hand."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time (epoch seconds) and monotonic time."""

    def now(self) -> float:
        """Return wall-clock time as epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Return a monotonic time in seconds for measuring intervals."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Return wall-clock time as epoch seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Return a monotonic time in seconds."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 0.0

    def now(self) -> float:
        """Return the current fake wall time."""
        return self._wall

    def monotonic(self) -> float:
        """Return the current fake monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._wall += seconds
        self._mono += seconds

    def jump(self, seconds: float) -> None:
        """Move only the wall clock (an NTP step, a wrong RTC): monotonic time is unaffected."""
        self._wall += seconds


class SteadyWall:
    """Wall time that moves with the monotonic clock from an anchor: immune to clock steps.

    For ages and lifetimes measured during one run (outbox TTL, message expiry): a clock set
    forward by a day must not expire a day of telemetry, nor one set back keep it forever.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._anchor = clock.now() - clock.monotonic()

    def now(self) -> float:
        """The anchor's wall time plus the monotonic time elapsed since."""
        return self._anchor + self._clock.monotonic()


def iso_utc(epoch: float) -> str:
    """Format epoch seconds as an RFC 3339 UTC timestamp with milliseconds."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
