"""scripts/bench_vision.py: time a running CameraService from outside, and drive cameras for a window.

The pipeline code is not changed: `_stage`, `_infer` and the person model's `session.run` are
wrapped on the instances (the run loop looks them up on `self` at every call).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.vision_common import CpuWindow, EventSink, mean_ms, ms, percentile
from edge.bus import Bus
from edge.clock import SystemClock
from edge.config_vision import CameraConfig
from edge.sources.cameras import CameraService, Staged
from edge.vision.camera_reader import Frame
from edge.vision.detector import Detector, Found
from edge.vision.models import VisionModels
from edge.vision.snapshots import SnapshotStore

_inside = threading.local()  # set while a pool thread runs a wrapped _infer


@dataclass(frozen=True, slots=True)
class Span:
    """One timed call: monotonic start and end; age = how old its frame was at the start."""

    start: float
    end: float
    age: float = 0.0
    to_model: bool = True  # a stage that produced network input (the motion gate let it through)

    @property
    def took(self) -> float:
        """Seconds the call took."""
        return self.end - self.start


@dataclass
class Probe:
    """Every _stage and _infer call of one camera."""

    stages: list[Span] = field(default_factory=list)
    infers: list[Span] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One session.run of the person model; in_infer is False for other callers (snapshot blurring)."""

    start: float
    end: float
    in_infer: bool


def instrument(service: CameraService) -> Probe:
    """Time this camera's _stage and _infer calls (in the pool threads), behaviour unchanged."""
    probe = Probe()
    stage, infer = service._stage, service._infer

    def timed_stage(frame: Frame) -> Staged:
        start = time.monotonic()
        staged: Staged | None = None
        try:
            staged = stage(frame)
            return staged
        finally:
            probe.stages.append(Span(start, time.monotonic(), start - frame.mono_ts,
                                     staged is not None and staged.prepared is not None))

    def timed_infer(staged: Staged) -> list[Found]:
        start = time.monotonic()
        _inside.infer = True
        try:
            return infer(staged)
        finally:
            _inside.infer = False
            end = time.monotonic()
            probe.infers.append(Span(start, end, end - staged.frame.mono_ts))

    service._stage = timed_stage  # type: ignore[method-assign]
    service._infer = timed_infer  # type: ignore[method-assign]
    return probe


@contextlib.contextmanager
def timed_session(detector: Detector) -> Iterator[list[ModelCall]]:
    """Record every session.run of this detector while the block runs."""
    calls: list[ModelCall] = []
    session = detector.session
    run: Callable[..., Any] = session.run

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return run(*args, **kwargs)
        finally:
            calls.append(ModelCall(start, time.monotonic(), bool(getattr(_inside, "infer", False))))

    session.run = timed_run
    try:
        yield calls
    finally:
        del session.run  # back to the class's method


def cycle_split(probe: Probe, calls: list[ModelCall], t0: float, t1: float) -> dict[str, Any]:
    """One camera's inference cycle in [t0, t1): the model's runs and its idle time between them.

    cycle = start of _infer k - start of _infer k-1. A stage that began after _infer k-1 had
    ended ran serially, not overlapped.
    """
    infers = sorted((s for s in probe.infers if t0 <= s.start < t1), key=lambda s: s.start)
    stages = sorted((s for s in probe.stages if s.to_model), key=lambda s: s.end)
    runs = [c for c in calls if c.in_infer and t0 <= c.start < t1]
    others = [c for c in calls if not c.in_infer and t0 <= c.start < t1]
    serial = 0
    for before, after in itertools.pairwise(infers):
        fed = [s for s in stages if s.end <= after.start]
        staged = fed[-1] if fed else None
        serial += staged is not None and staged.start >= before.end
    cycles = [b.start - a.start for a, b in itertools.pairwise(infers)]
    # The camera runs its model one call at a time (a per-camera turn), so the model's idle
    # time between consecutive runs is what the pipeline costs on top of the model.
    ordered = sorted(runs, key=lambda c: c.start)
    idle = [max(0.0, b.start - a.end) for a, b in itertools.pairwise(ordered)]
    window = t1 - t0
    busy = sum(c.end - c.start for c in runs)
    return {
        "inferences": len(infers),
        "cycle_ms": mean_ms(cycles),
        "session_run_ms": mean_ms([c.end - c.start for c in runs]),
        "infer_ms": mean_ms([s.took for s in infers]),
        "stage_ms": mean_ms([s.took for s in probe.stages if s.to_model and t0 <= s.start < t1]),
        "model_idle_ms": mean_ms(idle),
        "model_idle_ms_p95": ms(percentile(idle, 0.95)),
        "serial_stages": serial,
        "model_busy_pct": round(100.0 * busy / window, 1) if window > 0 else None,
        "other_model_calls": len(others),
        "other_model_ms": round(sum(c.end - c.start for c in others) * 1000.0, 1),
    }


def _camera_figures(cam: CameraConfig, service: CameraService, probe: Probe, wall: float, done: int,
                    calls: int, t0: float, t1: float) -> dict[str, Any]:
    health = service.reader.health() if service.reader is not None else None
    stages = [s for s in probe.stages if t0 <= s.start < t1]
    infers = [s for s in probe.infers if t0 <= s.start < t1]
    ages = [s.age for s in stages]
    half = len(ages) // 2
    return {
        "id": cam.id,
        "detect_fps": round(done / wall, 3),
        "inferences_per_s": round(calls / wall, 3),
        "input_fps": round(health.input_fps, 2) if health else None,
        "online": bool(health and health.online),
        "dropped_frames": health.dropped if health else None,
        "stage_ms_p50": ms(percentile([s.took for s in stages], 0.5)),
        "stage_ms_p95": ms(percentile([s.took for s in stages], 0.95)),
        "infer_ms_p50": ms(percentile([s.took for s in infers], 0.5)),
        "infer_ms_p95": ms(percentile([s.took for s in infers], 0.95)),
        "frame_age_ms_p95": ms(percentile(ages, 0.95)),  # frame arrival -> its _stage starts
        "result_age_ms_p95": ms(percentile([s.age for s in infers], 0.95)),  # arrival -> boxes out
        # a growing backlog shows as frames getting older from the first half to the second
        "frame_age_ms_first_half": mean_ms(ages[:half]) if half else None,
        "frame_age_ms_second_half": mean_ms(ages[half:]) if half else None,
        "detections": service.detections,
    }


async def drive_cameras(cameras: list[CameraConfig], models: VisionModels, workdir: Path, *,
                        warmup_s: float, window_s: float) -> dict[str, Any]:
    """Run CameraServices side by side; measure a window after a warm-up."""
    bus = Bus()
    sink = EventSink()
    snapshots = SnapshotStore(workdir / "snapshots",
                              face_finder=models.regions_to_blur if models.face is not None else None,
                              blur_faces=models.face is not None)
    services = [CameraService(cam, None, models, bus, SystemClock(), sink.record, snapshots)
                for cam in cameras]
    probes = [instrument(service) for service in services]
    queue_max = 0
    with timed_session(models.person) as model_calls:
        tasks = [asyncio.create_task(s.run(lambda: None), name=s.name) for s in services]
        try:
            await asyncio.sleep(warmup_s)
            analysed0 = [s.frames_analysed for s in services]
            inferred0 = [s.inferences for s in services]
            model0 = models.inferences
            cpu = CpuWindow()
            t0 = time.monotonic()
            end = t0 + window_s
            while (now := time.monotonic()) < end:
                queue_max = max(queue_max, models.pool._work_queue.qsize())
                await asyncio.sleep(min(0.25, end - now))
            t1 = time.monotonic()
            usage = cpu.result()
            analysed = [s.frames_analysed - a for s, a in zip(services, analysed0, strict=True)]
            inferred = [s.inferences - i for s, i in zip(services, inferred0, strict=True)]
            model_count = models.inferences - model0
            per_camera = [_camera_figures(cam, service, probe, t1 - t0, done, calls, t0, t1)
                          for cam, service, probe, done, calls
                          in zip(cameras, services, probes, analysed, inferred, strict=True)]
            failed = [f"{t.get_name()}: {t.exception()!r}" for t in tasks
                      if t.done() and not t.cancelled() and t.exception() is not None]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    wall = t1 - t0
    runs = [c.end - c.start for c in model_calls if t0 <= c.start < t1]
    return {"window_s": round(wall, 2), "cameras": per_camera, "model_inferences": model_count,
            "session_run_ms_mean": mean_ms(runs),
            "cycle": cycle_split(probes[0], model_calls, t0, t1) if len(services) == 1 else None,
            "model_inferences_per_s": round(model_count / wall, 3), "pool_queue_max": queue_max,
            "safety_events": [f"{e.type}:{e.data.get('kind')}" for e in sink.events],
            "snapshots": len(list((workdir / "snapshots").glob("*.jpg"))),
            "task_failures": failed, **usage}
