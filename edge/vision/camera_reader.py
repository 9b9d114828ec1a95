"""Camera reader: a worker thread per camera keeps only the newest frame, reconnects, and survives hangs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.backoff import Backoff
from edge.errors import CameraUnavailable, FrameRejected
from edge.vision.camera_state import Abandoned, CameraHealth, CameraState, Frame
from edge.vision.camera_url import capture_fps, open_capture, parse_camera_url
from edge.vision.frame_check import check_frame

__all__ = ["CameraHealth", "CameraReader", "Frame"]

logger = logging.getLogger(__name__)

WATCHDOG_TICK_S = 0.1
# Threads stuck inside OpenCV cannot be killed; past this many, wait for them before starting more.
MAX_STUCK_THREADS = 3
# A failed read that took this share of read_timeout_s ended because FFmpeg's timeout fired.
STALL_SHARE = 0.8


@dataclass(frozen=True)
class _SessionEnd:
    reason: str
    stalled: bool = False
    delivered: bool = False


class CameraReader:
    """Reads one camera on a worker thread, keeping only the newest frame; never blocks its callers."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        loop_file: bool = True,
        file_speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if open_timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("open_timeout_s and read_timeout_s must be positive")
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        if file_speed < 0:
            raise ValueError("file_speed must be >= 0 (0 reads files unpaced)")
        self.camera_id = camera_id
        self._source = parse_camera_url(url)
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._loop_file = loop_file
        self._file_speed = file_speed
        self._clock = clock
        self._state = CameraState(
            camera_id, self._source.display, read_timeout_s, Backoff(backoff_initial_s, backoff_max_s), clock
        )
        self._threads_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._stuck: list[threading.Thread] = []

    def start(self) -> None:
        """Start reading in the background (idempotent)."""
        with self._threads_lock:
            if self._state.stopped.is_set():
                raise RuntimeError("a stopped CameraReader cannot be restarted; make a new one")
            if self._watchdog is not None:
                return
            self._start_worker(0.0)
            self._watchdog = threading.Thread(
                target=self._supervise, name=f"camera-{self.camera_id}-watchdog", daemon=True
            )
            self._watchdog.start()
        logger.info("camera %s: reading %s", self.camera_id, self._source.display)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop reading (idempotent); False if a thread is still inside OpenCV after timeout.

        Such a thread is a daemon: it releases its capture when OpenCV returns and publishes nothing.
        """
        first = not self._state.stopped.is_set()
        self._state.stop()
        with self._threads_lock:
            threads = [t for t in (self._watchdog, self._worker) if t is not None]
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        ended = not any(t.is_alive() for t in threads)
        if first:
            logger.info("camera %s: stopped%s", self.camera_id, "" if ended else " (a read is still ending)")
        return ended

    def latest(self) -> Frame | None:
        """Return the newest frame (possibly stale: check mono_ts or health()), or None before the first."""
        return self._state.latest()

    def wait_newer(self, after_index: int, timeout: float) -> Frame | None:
        """Block until a frame with index > after_index exists; None on timeout or stop."""
        return self._state.wait_newer(after_index, timeout)

    def health(self) -> CameraHealth:
        """Return a snapshot of state and counters."""
        return self._state.health()

    # ----------------------------------------------------------------- worker

    def _work(self, generation: int, first_delay_s: float) -> None:
        try:
            if first_delay_s > 0 and self._state.stopped.wait(first_delay_s):
                return
            while True:
                end = self._session(generation)
                if end is None:
                    return
                delay = self._state.session_ended(
                    generation, end.reason, stalled=end.stalled, delivered=end.delivered
                )
                if delay is None or self._state.stopped.wait(delay):
                    return
        except Exception as exc:
            # The watchdog restarts a dead worker; one camera must never take the gateway down.
            if self._state.worker_failed(generation, f"internal error: {type(exc).__name__}: {exc}"):
                logger.exception("camera %s: reader thread failed", self.camera_id)

    def _session(self, generation: int) -> _SessionEnd | None:
        """Open the source and read until it fails; None when this generation was abandoned."""
        capture: Any = None
        delivered = False
        try:
            self._state.count_attempt(generation)
            capture = self._open(generation)
            is_file = self._source.kind == "file"
            period = 0.0
            if is_file and self._file_speed > 0:
                period = 1.0 / (capture_fps(capture) * self._file_speed)
            pass_frames = 0
            due = self._clock()
            while True:
                started = self._clock()
                with self._state.busy(generation, "read", self._read_timeout_s):
                    ok, image = capture.read()
                if not ok:
                    if is_file and pass_frames > 0 and self._loop_file:
                        # A demo file loops like a live camera; reopening also copes with truncated tails.
                        capture.release()
                        capture = None
                        capture = self._open(generation)
                        pass_frames = 0
                        continue
                    return self._read_failed(is_file, pass_frames, self._clock() - started, delivered)
                pass_frames += 1
                delivered = self._accept(generation, image) or delivered
                if period > 0:
                    due += period
                    now = self._clock()
                    if due < now - 1.0:
                        due = now  # fell far behind (slow disk, paused VM): resync instead of bursting
                    if due > now and self._state.stopped.wait(due - now):
                        return None
        except CameraUnavailable as exc:
            return _SessionEnd(exc.reason, delivered=delivered)
        except Abandoned:
            return None
        finally:
            if capture is not None:
                capture.release()

    def _read_failed(self, is_file: bool, pass_frames: int, elapsed: float, delivered: bool) -> _SessionEnd:
        if is_file:
            if pass_frames == 0:
                return _SessionEnd(f"no decodable frames in {self._source.display}", delivered=delivered)
            return _SessionEnd("end of file", delivered=delivered)
        if elapsed >= STALL_SHARE * self._read_timeout_s:
            return _SessionEnd(
                f"no frame for {self._read_timeout_s:g}s (stream stalled)", stalled=True, delivered=delivered
            )
        return _SessionEnd("stream ended, connection lost or undecodable data", delivered=delivered)

    def _open(self, generation: int) -> Any:
        capture: Any = None
        try:
            with self._state.busy(generation, "open", self._open_timeout_s):
                capture = open_capture(
                    self.camera_id, self._source, self._open_timeout_s, self._read_timeout_s
                )
        except Abandoned:
            if capture is not None:
                capture.release()
            raise
        return capture

    def _accept(self, generation: int, image: object) -> bool:
        try:
            bgr = check_frame(image)
        except FrameRejected as exc:
            self._state.count_bad(generation, exc.reason)
            return False
        # Several consumers share one Frame; a read-only image stops one from drawing on another's.
        bgr.flags.writeable = False
        return self._state.publish(generation, bgr)

    # ----------------------------------------------------------------- watchdog

    def _start_worker(self, first_delay_s: float) -> None:
        generation = self._state.next_generation()
        if generation is None:
            return  # stop() came first; a worker started now would never be told to end
        self._worker = threading.Thread(
            target=self._work,
            args=(generation, first_delay_s),
            name=f"camera-{self.camera_id}-{generation}",
            daemon=True,
        )
        self._worker.start()

    def _supervise(self) -> None:
        while not self._state.stopped.wait(WATCHDOG_TICK_S):
            try:
                self._watchdog_tick()
            except Exception:
                logger.exception("camera %s: watchdog failed", self.camera_id)

    def _watchdog_tick(self) -> None:
        with self._threads_lock:
            worker = self._worker
            if worker is not None:
                delay = self._state.give_up_on_worker(self._clock(), worker.is_alive())
                if delay is None:
                    return
                if worker.is_alive():
                    self._stuck.append(worker)
                self._worker = None
            else:
                delay = 0.0  # an earlier tick was waiting for stuck threads; it already backed off
            self._stuck = [t for t in self._stuck if t.is_alive()]
            if self._state.stopped.is_set():
                return
            if len(self._stuck) < MAX_STUCK_THREADS:
                self._start_worker(delay)
            else:
                self._state.waiting_for_stuck(len(self._stuck))
