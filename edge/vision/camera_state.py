"""What a camera's threads share: the newest frame, counters, and the generation fencing off hung workers."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from edge.backoff import Backoff

# The reader's logger: one name to filter on for everything a camera reports.
logger = logging.getLogger("edge.vision.camera_reader")

FPS_WINDOW_S = 5.0
WATCHDOG_GRACE_S = 2.0


# eq=False: the generated __eq__/__hash__ would compare and hash the ndarray, which raises.
@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: a read-only BGR image, its per-reader index and when it arrived."""

    image: np.ndarray = field(repr=False)
    index: int
    mono_ts: float
    wall_ts: float


@dataclass(frozen=True)
class CameraHealth:
    """A snapshot of one camera's state and counters."""

    camera_id: str
    online: bool
    input_fps: float
    frames: int
    dropped: int
    bad_frames: int
    reconnects: int
    stalls: int
    last_frame_age_s: float | None
    last_error: str | None
    width: int | None
    height: int | None


class Abandoned(Exception):
    """This worker's generation is over (watchdog or stop); unwind without touching shared state."""


class CameraState:
    """The newest-frame slot and counters; every worker-side call is fenced by its generation.

    A worker the watchdog gave up on may come back from OpenCV much later: bumping the
    generation makes everything it then tries (publish, count, log) a no-op.
    """

    def __init__(
        self,
        camera_id: str,
        display: str,
        read_timeout_s: float,
        backoff: Backoff,
        clock: Callable[[], float],
    ) -> None:
        self.camera_id = camera_id
        self.display = display
        self.cond = threading.Condition()  # one lock for everything below; also wakes wait_newer()
        self.stopped = threading.Event()
        self.generation = 0
        self._read_timeout_s = read_timeout_s
        self._backoff = backoff
        self._clock = clock
        self._busy_since: float | None = None
        self._busy_limit = 0.0
        self._busy_what = ""
        self._latest: Frame | None = None
        self._latest_taken = False
        self._next_index = 1
        self._arrivals: collections.deque[float] = collections.deque()
        self._online = False
        self._frames = 0
        self._dropped = 0
        self._bad_frames = 0
        self._reconnects = 0
        self._stalls = 0
        self._open_attempts = 0
        self._last_error: str | None = None
        self._last_bad_reason: str | None = None

    # ----------------------------------------------------------------- consumers

    def latest(self) -> Frame | None:
        """The newest frame, marked as taken."""
        with self.cond:
            if self._latest is not None:
                self._latest_taken = True
            return self._latest

    def wait_newer(self, after_index: int, timeout: float) -> Frame | None:
        """Block until a frame with index > after_index exists; None on timeout or stop."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                frame = self._latest
                if frame is not None and frame.index > after_index:
                    self._latest_taken = True
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopped.is_set():
                    return None
                self.cond.wait(remaining)

    def health(self) -> CameraHealth:
        """A snapshot of state and counters."""
        with self.cond:
            now = self._clock()
            self._prune_arrivals(now)
            frame = self._latest
            age = None if frame is None else max(0.0, now - frame.mono_ts)
            online = self._online and age is not None and age <= self._read_timeout_s
            fps = 0.0
            if online and len(self._arrivals) >= 2:
                span = self._arrivals[-1] - self._arrivals[0]
                fps = (len(self._arrivals) - 1) / span if span > 0 else 0.0
            return CameraHealth(
                camera_id=self.camera_id,
                online=online,
                input_fps=fps,
                frames=self._frames,
                dropped=self._dropped,
                bad_frames=self._bad_frames,
                reconnects=self._reconnects,
                stalls=self._stalls,
                last_frame_age_s=age,
                last_error=self._last_error,
                width=None if frame is None else int(frame.image.shape[1]),
                height=None if frame is None else int(frame.image.shape[0]),
            )

    def stop(self) -> None:
        """Fence off every worker and wake all waiters."""
        with self.cond:
            self.stopped.set()
            self.generation += 1
            self._online = False
            self.cond.notify_all()

    # ----------------------------------------------------------------- the worker

    @contextmanager
    def busy(self, generation: int, what: str, timeout_s: float) -> Iterator[None]:
        """Mark the worker as inside an OpenCV call so the watchdog can notice a hang."""
        with self.cond:
            if generation != self.generation:
                raise Abandoned
            self._busy_what = what
            self._busy_limit = timeout_s + WATCHDOG_GRACE_S
            self._busy_since = self._clock()
        try:
            yield
        finally:
            with self.cond:
                abandoned = generation != self.generation
                if not abandoned:
                    self._busy_since = None
        if abandoned:
            raise Abandoned

    def publish(self, generation: int, image: np.ndarray) -> bool:
        """Make image the newest frame; False if this worker was abandoned."""
        with self.cond:
            if generation != self.generation:
                return False
            now = self._clock()
            if self._latest is not None and not self._latest_taken:
                self._dropped += 1
            self._latest = Frame(image, self._next_index, now, time.time())
            self._latest_taken = False
            self._next_index += 1
            self._frames += 1
            self._arrivals.append(now)
            self._prune_arrivals(now)
            came_online = not self._online
            self._online = True
            self.cond.notify_all()
        if came_online:
            height, width = image.shape[:2]
            logger.info("camera %s: online, %dx%d from %s", self.camera_id, width, height, self.display)
        return True

    def count_bad(self, generation: int, reason: str) -> None:
        """Count a frame check_frame rejected; log only when the reason changes."""
        with self.cond:
            if generation != self.generation:
                return
            self._bad_frames += 1
            new_reason = reason != self._last_bad_reason
            self._last_bad_reason = reason
        if new_reason:
            logger.warning("camera %s: dropping bad frames: %s", self.camera_id, reason)

    def count_attempt(self, generation: int) -> None:
        """Count an open attempt; every one after the first is a reconnect."""
        with self.cond:
            if generation != self.generation:
                raise Abandoned
            if self._open_attempts > 0:
                self._reconnects += 1
            self._open_attempts += 1

    def session_ended(self, generation: int, reason: str, *, stalled: bool, delivered: bool) -> float | None:
        """Record why a session ended; return the backoff delay, or None if abandoned."""
        with self.cond:
            if generation != self.generation:
                return None
            if delivered:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            if stalled:
                self._stalls += 1
            was_online, changed = self._go_offline(reason)
        self._log_offline(reason, was_online, changed, delay)
        return delay

    def worker_failed(self, generation: int, reason: str) -> bool:
        """Note an unexpected worker error; False if that worker was abandoned anyway."""
        with self.cond:
            if generation != self.generation:
                return False
            self._go_offline(reason)
            return True

    # ----------------------------------------------------------------- the watchdog

    def next_generation(self) -> int | None:
        """Start a generation for a fresh worker (the old one can no longer publish); None once stopped."""
        with self.cond:
            if self.stopped.is_set():
                return None
            self.generation += 1
            self._busy_since = None
            return self.generation

    def give_up_on_worker(self, now: float, worker_alive: bool) -> float | None:
        """If the worker hangs in OpenCV or died, fence it off and return the backoff delay."""
        with self.cond:
            if self.stopped.is_set():
                return None
            if self._busy_since is not None and now - self._busy_since > self._busy_limit:
                # OpenCV ignored its own timeout; a thread cannot be killed, so it is left behind.
                reason = f"hung in {self._busy_what} for over {self._busy_limit:g}s; reader thread abandoned"
                self._stalls += 1
            elif not worker_alive:
                reason = self._last_error or "reader thread ended unexpectedly"
            else:
                return None
            self.generation += 1
            self._busy_since = None
            delay = self._backoff.next_delay()
            was_online, changed = self._go_offline(reason)
        self._log_offline(reason, was_online, changed, delay)
        return delay

    def waiting_for_stuck(self, count: int) -> None:
        """Say (once) that no new worker starts until hung ones return."""
        reason = f"waiting for {count} hung reader threads to return"
        with self.cond:
            was_online, changed = self._go_offline(reason)
        if changed:
            logger.warning("camera %s: %s%s", self.camera_id, "offline: " if was_online else "", reason)

    # ----------------------------------------------------------------- helpers (lock held)

    def _go_offline(self, reason: str) -> tuple[bool, bool]:
        was_online = self._online
        changed = reason != self._last_error
        self._online = False
        self._last_error = reason
        self._last_bad_reason = None
        return was_online, changed

    def _log_offline(self, reason: str, was_online: bool, changed: bool, delay: float) -> None:
        # Once per state change: a camera that stays down for a weekend must not fill the disk.
        if was_online:
            logger.warning("camera %s: offline: %s; retrying in %.1fs", self.camera_id, reason, delay)
        elif changed:
            logger.warning("camera %s: unavailable: %s; retrying in %.1fs", self.camera_id, reason, delay)
        else:
            logger.debug("camera %s: still unavailable: %s", self.camera_id, reason)

    def _prune_arrivals(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] < now - FPS_WINDOW_S:
            self._arrivals.popleft()
