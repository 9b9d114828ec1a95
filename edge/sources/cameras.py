"""Camera service: newest frame -> motion gate -> shared person model -> counts, presence, tamper."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from edge.bus import Bus
from edge.clock import Clock
from edge.config_vision import CameraConfig
from edge.errors import EdgeError, FrameRejected
from edge.events import (
    CameraStats,
    Detection,
    Envelope,
    LineCrossing,
    Occupancy,
    SafetyEvent,
    Severity,
    ZonePresence,
    ZoneSnapshot,
)
from edge.sources.availability import Availability
from edge.vision.camera_analytics import AnalyticsUpdate, CameraAnalytics, relative_boxes
from edge.vision.camera_reader import CameraReader, Frame
from edge.vision.detector import Found, Prepared
from edge.vision.models import VisionModels
from edge.vision.motion import MotionGate
from edge.vision.snapshots import (
    SnapshotDiskLow,
    SnapshotRefused,
    SnapshotStore,
    anonymise_faces,
    encode_jpeg,
)
from edge.vision.tamper import TamperDetector
from edge.vision.zones import Zone

log = logging.getLogger(__name__)

RecordEvent = Callable[[SafetyEvent], Awaitable[Envelope]]
T = TypeVar("T")
R = TypeVar("R")
STATS_EVERY_S = 10.0
TAMPER_EVERY_S = 1.0  # tampering lasts seconds (hold_s): checking every frame wastes CPU
MAX_IN_FLIGHT = 2  # frames per camera in analysis: one in the model, the next being prepared
FAILED_FRAMES_LIMIT = 20  # in a row: then the service crashes and the supervisor restarts it
ZONE_SNAPSHOT_EVERY_S = 60.0  # evidence for an intrusion, not a photo album of everyone passing
STILL_CACHE_S = 2.0  # the console's still: many open browsers share one blurring run
SECOND_LOOK_S = 1.0  # a newcomer seen this recently gets its confirming look at the next frame
NEW_FRAME_POLL_S = 0.02  # how often to check for that next frame meanwhile
LATENCY_SAMPLES = 200  # model run times kept for the health report's p50/p99 (minutes at 2 fps)


@dataclass(frozen=True, slots=True)
class Staged:
    """A frame after the cheap per-camera steps; prepared is None when the motion gate skips it."""

    frame: Frame
    prepared: Prepared | None
    tamper_changes: list[tuple[str, bool]]
    width: int
    height: int


InFlight = tuple[Staged, "asyncio.Future[list[Found] | None] | None"]


class CameraService:
    """Service: one camera, read on its own thread, analysed in the shared inference pool."""

    def __init__(self, camera: CameraConfig, password: str | None, models: VisionModels, bus: Bus,
                 clock: Clock, record_event: RecordEvent, snapshots: SnapshotStore | None) -> None:
        self.name = f"camera-{camera.id}"
        self.camera = camera
        self._url = camera.stream_url(password)
        self._models = models
        self._bus = bus
        self._clock = clock
        self._record_event = record_event
        self._snapshots = snapshots
        self._availability = Availability(camera.id, camera.room_id, bus, clock)
        self._gate = MotionGate(min_changed_fraction=camera.motion.min_changed_fraction,
                                recheck_s=camera.motion.recheck_s) if camera.motion.enabled else None
        self._tamper = TamperDetector(hold_s=camera.tamper.hold_s) if camera.tamper.enabled else None
        self._analytics = CameraAnalytics(camera)
        self._ignore = [Zone(f"ignore-{i}", polygon) for i, polygon in enumerate(camera.ignore)]
        self._last_found: list[Found] = []
        self._scene_still = False  # the motion gate skipped the last frame (nothing moved)
        self.reader: CameraReader | None = None
        self.inferences = 0
        # Seconds per model run, newest last; appended from pool threads (deque appends are atomic).
        self.inference_times: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        self.detections = 0
        self.occupancy_updates = 0
        self.frames_analysed = 0
        self.bad_frames = 0
        self.failed_frames = 0
        # Per step (stage, infer): a step that fails on every frame must reach the limit even
        # while the other one keeps succeeding.
        self._failed_in_row: collections.Counter[str] = collections.Counter()
        self._tamper_at = float("-inf")
        self._model_turn = threading.Lock()  # one model run at a time per camera
        self._detect_times: list[float] = []
        self._zone_snapshot_at: dict[str, float] = {}
        self._last_frame: Frame | None = None  # for still(); the reader's newest frame taken in
        self._still_cache: tuple[float, bytes | SnapshotRefused] | None = None
        self._still_lock = asyncio.Lock()
        self._looked_again_for: float | None = None  # the newcomer the last started frame looks at

    async def run(self, ready: Callable[[], None]) -> None:
        """Read and analyse until cancelled; the reader thread is stopped on the way out."""
        reader = self.reader = CameraReader(
            self.camera.id, self._url, open_timeout_s=self.camera.open_timeout_s,
            read_timeout_s=self.camera.read_timeout_s)
        reader.start()
        ready()
        loop = asyncio.get_running_loop()
        period = 1.0 / self.camera.detect_fps
        last_index = 0
        next_stats = time.monotonic() + STATS_EVERY_S
        # Frames in analysis, oldest first; results are applied in this order. A frame the
        # motion gate skipped has no future: it reuses the result before it.
        queue: collections.deque[InFlight] = collections.deque()
        try:
            while True:
                started = time.monotonic()
                self._follow_health(reader)
                frame = reader.latest()
                if frame is not None and frame.index != last_index and len(queue) < MAX_IN_FLIGHT:
                    last_index = frame.index
                    self._last_frame = frame
                    # This frame is the second look for whoever waits now: one extra frame each.
                    self._looked_again_for = self._analytics.newcomer_since()
                    await self._start(frame, queue, loop)
                await self._apply_done(queue)
                if started >= next_stats:
                    next_stats = started + STATS_EVERY_S
                    self._bus.publish(self.stats(reader))
                remaining = period - (time.monotonic() - started)
                head = queue[0][1] if queue else None
                if head is not None and (remaining > 0 or len(queue) >= MAX_IN_FLIGHT):
                    # Within the period: finish the oldest frame now if the model is done by then
                    # (low latency at the usual 2 fps). Behind: wait for it, the next one runs.
                    await asyncio.wait({head}, timeout=remaining if remaining > 0 else None)
                    await self._apply_done(queue)
                    remaining = period - (time.monotonic() - started)
                await asyncio.sleep(max(0.0, self._next_frame_wait(remaining)))
        finally:
            await asyncio.to_thread(reader.stop)

    def _next_frame_wait(self, remaining: float) -> float:
        """Shorten the wait for the next frame when waiting a whole detect period would delay an alert.

        Two cases: someone was just seen once (a track needs a second sighting), and an empty,
        still scene (the gate skipped the last frame and nobody is there): then every new frame
        goes through the cheap motion gate, so a person walking into an empty corridor at night
        is analysed at once. A busy scene keeps the detect_fps pace.
        """
        if self._gate is not None and self._scene_still and not self._last_found:
            return min(remaining, NEW_FRAME_POLL_S)
        since = self._analytics.newcomer_since()
        if since is None or since == self._looked_again_for or time.monotonic() - since > SECOND_LOOK_S:
            return remaining
        return min(remaining, NEW_FRAME_POLL_S)

    async def _start(self, frame: Frame, queue: collections.deque[InFlight],
                     loop: asyncio.AbstractEventLoop) -> None:
        """Stage a frame (its cheap steps overlap the model's run on the previous one), start
        the model on it unless the motion gate skipped it, and raise its tamper events."""
        staged = await loop.run_in_executor(self._models.pool, self._guarded, self._stage, frame)
        if staged is None:
            return
        future = None
        if staged.prepared is not None:
            future = loop.run_in_executor(self._models.pool, self._guarded, self._infer, staged)
        queue.append((staged, future))
        for kind, active in staged.tamper_changes:
            await self._tamper_event(kind, active, staged.frame, self._clock.now())

    async def _apply_done(self, queue: collections.deque[InFlight]) -> None:
        """Apply finished frames in order, stopping at the first one still running."""
        while queue and (queue[0][1] is None or queue[0][1].done()):
            staged, future = queue.popleft()
            if future is None:
                # Nothing moved: the last result still stands, so tracks (and how long
                # someone has stood in a zone) carry on instead of expiring.
                self._scene_still = True
                await self._apply(staged, self._last_found, inferred=False)
                continue
            self._scene_still = False
            found = future.result()
            if found is not None:
                self._last_found = found
                await self._apply(staged, found, inferred=True)

    def _follow_health(self, reader: CameraReader) -> None:
        health = reader.health()
        if health.online:
            self._availability.seen()
        elif health.last_error or health.frames or health.bad_frames:
            reason = health.last_error or ("every frame unusable" if health.bad_frames else "no frames")
            self._availability.lost(reason)

    def _stage(self, frame: Frame) -> Staged:
        """In the pool, one frame at a time per camera: tamper check, motion gate, network input."""
        image = frame.image
        now = frame.mono_ts
        height, width = image.shape[:2]
        changes: list[tuple[str, bool]] = []
        if self._tamper is not None and now - self._tamper_at >= TAMPER_EVERY_S:
            self._tamper_at = now
            self._tamper.update(image, now)
            changes = list(self._tamper.changes)
        if self._gate is not None and not self._gate.check(image, now).infer:
            return Staged(frame, None, changes, width, height)
        return Staged(frame, self._models.person.prepare(image), changes, width, height)

    def _infer(self, staged: Staged) -> list[Found]:
        """In the pool: the person model on a staged frame, minus the ignored areas."""
        assert staged.prepared is not None, "only staged frames that need the model get here"
        started = time.perf_counter()
        found = self._models.finish_persons(staged.prepared, self._model_turn)
        self.inference_times.append(time.perf_counter() - started)
        return self._without_ignored(found, staged.width, staged.height)

    def _guarded(self, step: Callable[[T], R], arg: T) -> R | None:
        """Run one pool step; a bad frame or one odd failure costs the frame, not the camera."""
        try:
            result = step(arg)
        except FrameRejected as err:
            self.bad_frames += 1
            log.debug("camera %s: frame dropped: %s", self.camera.id, err.reason)
            return None
        except Exception as err:
            # cv2.error, an ONNX Runtime failure...: a run of them is a real fault, left to
            # the supervisor (restart with backoff).
            self.failed_frames += 1
            self._failed_in_row[step.__name__] += 1
            in_row = self._failed_in_row[step.__name__]
            if in_row >= FAILED_FRAMES_LIMIT:
                raise
            if in_row == 1:
                log.warning("camera %s: frame analysis failed (%s: %s); frame dropped",
                            self.camera.id, type(err).__name__, err)
            return None
        self._failed_in_row[step.__name__] = 0
        return result

    def _without_ignored(self, found: list[Found], width: int, height: int) -> list[Found]:
        if not self._ignore:
            return found
        kept = []
        for item in found:
            x = (item.box[0] + item.box[2]) / 2 / width
            y = (item.box[1] + item.box[3]) / 2 / height
            if not any(zone.contains(x, y) for zone in self._ignore):
                kept.append(item)
        return kept

    async def _apply(self, staged: Staged, found: list[Found], inferred: bool) -> None:
        now = self._clock.now()
        frame, width, height = staged.frame, staged.width, staged.height
        self.frames_analysed += 1
        boxes = relative_boxes(found, width, height)
        if inferred:
            self.inferences += 1
            self._detect_times.append(time.monotonic())
            for item, (box, score) in zip(found, boxes, strict=True):
                self._bus.publish(Detection(self.camera.id, item.label, score, box, now))
            self.detections += len(found)
        update = self._analytics.update(boxes, frame.mono_ts)
        self._publish(update, now, frame)
        for presence in update.presence:
            if presence.present:
                await self._presence_snapshot(presence.zone_id, frame)

    def _publish(self, update: AnalyticsUpdate, now: float, frame: Frame) -> None:
        cam, room = self.camera.id, self.camera.room_id
        wall_offset = frame.wall_ts - frame.mono_ts  # analytics run on monotonic time
        for zone_id, count in update.counts.items():
            self.occupancy_updates += 1
            self._bus.publish(Occupancy(room, count, now, camera_id=cam, zone_id=zone_id))
        for p in update.presence:
            entered = round(p.entered_at + wall_offset, 3)
            self._bus.publish(ZonePresence(cam, room, p.zone_id, p.track_id, entered, now, p.present))
        for c in update.crossings:
            self._bus.publish(LineCrossing(cam, room, c.line_id, c.ins, c.outs, c.total_in, c.total_out, now))

    async def _tamper_event(self, kind: str, active: bool, frame: Frame, now: float) -> None:
        data: dict[str, object] = {"camera_id": self.camera.id, "kind": kind, "active": active}
        if active:
            snapshot_id = await self._snapshot(frame, f"tamper:{kind}")
            if snapshot_id:
                data["snapshot_id"] = snapshot_id
        event = SafetyEvent("camera_tamper" if active else "camera_tamper_cleared",
                            Severity.WARNING if active else Severity.INFO, now, f"camera:{self.camera.id}",
                            self.camera.room_id, data)
        log.warning("camera %s: %s %s", self.camera.id, kind, "detected" if active else "cleared")
        await self._record_event(event)

    async def _presence_snapshot(self, zone_id: str, frame: Frame) -> None:
        # Kept for the alerts layer (intrusion evidence); ids only ever leave the box.
        last = self._zone_snapshot_at.get(zone_id)
        if last is not None and frame.mono_ts - last < ZONE_SNAPSHOT_EVERY_S:
            return
        self._zone_snapshot_at[zone_id] = frame.mono_ts
        snapshot_id = await self._snapshot(frame, f"zone:{zone_id}")
        if snapshot_id is not None:
            # Told only once the file is kept: an alert never names a snapshot that is not there.
            self._bus.publish(ZoneSnapshot(self.camera.id, self.camera.room_id, zone_id, snapshot_id,
                                           self._clock.now()))

    async def _snapshot(self, frame: Frame, reason: str) -> str | None:
        if self._snapshots is None:
            return None
        store = self._snapshots
        try:
            snap = await asyncio.get_running_loop().run_in_executor(
                self._models.pool, store.save, frame.image, self.camera.id, reason)
        except SnapshotDiskLow:  # the snapshot store logs the episode once, not every frame
            return None
        except (EdgeError, OSError) as err:  # SnapshotRefused included
            log.warning("camera %s: snapshot not kept: %s", self.camera.id, type(err).__name__)
            return None
        return snap.snapshot_id

    async def still(self) -> bytes | None:
        """The newest frame as a JPEG with faces and heads blurred; None before the first frame.

        Raises SnapshotRefused when it cannot be blurred (no face model, a model failure): fail
        closed, as SnapshotStore does. Always blurred, even where snapshots may be kept sharp
        (privacy.blur_faces off). Kept in memory only, for STILL_CACHE_S.
        """
        async with self._still_lock:  # concurrent requests wait for one run instead of each starting one
            cached = self._still_cache
            if cached is None or time.monotonic() - cached[0] >= STILL_CACHE_S:
                frame = self._last_frame
                if frame is None:
                    return None
                models = self._models
                finder = models.regions_to_blur if models.face is not None else None
                result: bytes | SnapshotRefused
                try:
                    result = await asyncio.get_running_loop().run_in_executor(
                        models.pool, lambda: encode_jpeg(anonymise_faces(frame.image, finder)[0]))
                except SnapshotRefused as refused:
                    result = refused
                except RuntimeError as err:  # the pool is shut down: no still rather than a sharp one
                    result = SnapshotRefused(f"still failed: {type(err).__name__}")
                cached = self._still_cache = (time.monotonic(), result)
        if isinstance(cached[1], SnapshotRefused):
            raise SnapshotRefused(cached[1].reason)
        return cached[1]

    def stats(self, reader: CameraReader) -> CameraStats:
        """Current health figures for this camera."""
        health = reader.health()
        cutoff = time.monotonic() - STATS_EVERY_S
        self._detect_times = [t for t in self._detect_times if t >= cutoff]
        return CameraStats(
            self.camera.id, self.camera.room_id, health.online, self._clock.now(),
            input_fps=round(health.input_fps, 2),
            detect_fps=round(len(self._detect_times) / STATS_EVERY_S, 2),
            inferences=self.inferences, frames=health.frames, dropped=health.dropped,
            bad_frames=health.bad_frames + self.bad_frames, reconnects=health.reconnects,
            stalls=health.stalls, last_frame_age_s=health.last_frame_age_s,
            # The reader keeps its last error after recovering; stats say what is wrong now.
            last_error=None if health.online else health.last_error)
