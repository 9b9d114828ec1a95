#!/usr/bin/env python3
"""Vision benchmark: raw ONNX vs the camera pipeline, cameras per box, motion gate, memory.

Run with the project's venv: `.venv/bin/python scripts/bench_vision.py [--json] [--duration S]`
(`--quick`: a ~2 minute smoke version). Figures, all measured in one run on this machine:

a. raw ONNX throughput of the person and face models (`Detector.infer` in a loop on input
   tensors prepared up front from frames of the real clip, one call at a time, the pipeline's
   thread settings) vs one camera through the whole pipeline (CameraService: reader thread,
   tamper check, preprocess, person model, decode + NMS, tracking/zones/lines) with the motion
   gate off, detect_fps 30 and the clip read at 3x its speed (30 fps, so a new frame is always
   waiting and the loop never sleeps). The box is shared and noisy (the same session.run takes
   33-55 ms from one second to the next), so raw and pipeline segments alternate (raw, pipe, raw,
   ..., raw; each pipeline segment a fresh CameraService) and the ratio is taken over the sum.
   Inside the pipeline every session.run and every CameraService._analyse is timed (wrapped on
   the instance, the code is unchanged), which splits one inference cycle into model time, the
   rest of the analysis (tamper, preprocess, NMS) and the camera loop's idle gap; a serial
   per-stage timing on the clip's frames says what each stage costs. The pipeline is also run
   with the file read unpaced (decoding flat out, as file_speed=0 does), to show what a busy
   decoder thread costs on two cores.
b. N file cameras at their own 10 fps, 2 fps detection each, motion gate and tamper on, one
   zone and one doorway line each (as in config/edge.example.yaml), blurred snapshots kept:
   N = 1, 2, 4, 6, 8, ... until a run fails; a run passes when every camera's analysed-frame
   rate stays >= 95% of detect_fps over the window and the process's CPU time is <= 80% of
   all cores (after a pass at N and a fail at N+2, N+1 is tried). Each N runs in a fresh
   subprocess.
c. a static scene (one real frame of the clip repeated, with mild fixed-seed sensor noise,
   mp4-encoded into a temp dir): one camera with the motion gate on and one with it off, side
   by side on the same file (10 fps input, 2 fps detection): person-model calls per minute.
d. peak RSS (ru_maxrss) of a fresh process with 4 cameras and both models loaded.

Cameras are driven as CameraService instances on an asyncio loop with a Bus (no broker or
store: the cameras' own cost is what is measured). Phases run in subprocesses of this script
(`--phase a|b|c|d`), which print one `BENCH-RESULT {json}` line. Nothing here asserts timing:
the figures go in a report. No extra tool is needed; to profile a phase by hand:
`py-spy record -f raw -t --nonblocking -o prof.txt -- .venv/bin/python scripts/bench_vision.py
--phase b --cameras 12` (blocking, --native sampling stalls the pool and distorts the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import edge.sources.cameras as cameras_module  # noqa: E402
from edge.bus import Bus  # noqa: E402
from edge.clock import SystemClock  # noqa: E402
from edge.config_vision import CameraConfig, VisionConfig  # noqa: E402
from edge.events import Envelope, SafetyEvent  # noqa: E402
from edge.sources.cameras import CameraService, FrameResult  # noqa: E402
from edge.vision.camera_analytics import CameraAnalytics, relative_boxes  # noqa: E402
from edge.vision.camera_reader import CameraReader, Frame  # noqa: E402
from edge.vision.detector import Detector  # noqa: E402
from edge.vision.frame_check import check_frame  # noqa: E402
from edge.vision.models import VisionModels  # noqa: E402
from edge.vision.motion import MotionGate  # noqa: E402
from edge.vision.preprocess import Placement  # noqa: E402
from edge.vision.snapshots import SnapshotStore  # noqa: E402
from edge.vision.tamper import TamperDetector  # noqa: E402

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"
RESULT_PREFIX = "BENCH-RESULT "
DETECT_FPS = 2.0  # production default per camera
RATE_SHARE = 0.95  # a camera keeps up when it analyses >= this share of detect_fps
CPU_BUDGET_PCT = 80.0  # of all cores
FAST_FILE_SPEED = 3.0  # phase a: the 10 fps clip read at 30 fps, always a new frame waiting
PIPELINE_DETECT_FPS = 30.0  # the config's maximum: the loop never sleeps at ~10 inferences/s
STATIC_FRAME_INDEX = 0
STATIC_NOISE_SIGMA = 2.0  # grey levels; a real sensor's noise in a lit room
STATIC_SEED = 20240611
STATIC_FRAMES = 150
SWEEP_START = (1, 2, 4)  # then +2 each step
TARGETS = {"pipeline_vs_raw": 0.9, "max_cameras": 8, "motion_gate_ratio": 5.0, "peak_rss_mb_4_cameras": 500.0}

log = logging.getLogger("bench_vision")


# ----------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs (seconds unless named otherwise)."""

    raw_s: float = 3.0  # one raw segment; phase a alternates raw and pipeline segments
    face_s: float = 5.0
    stage_frames: int = 40
    pipe_warmup_s: float = 1.5  # per pipeline segment (reader open, tamper learning)
    pipe_s: float = 20.0  # pipeline time in all, in segments of about pipe_round_s
    pipe_round_s: float = 4.0
    unpaced_s: float = 12.0
    sweep_warmup_s: float = 4.0
    sweep_s: float = 20.0
    static_warmup_s: float = 2.0
    static_s: float = 30.0
    rss_s: float = 20.0
    max_cameras: int = 24
    refine: bool = True  # after a pass at N and a fail at N+2, try N+1

    def rounds(self, seconds: float) -> int:
        """How many pipeline segments make up `seconds` of pipeline time."""
        return max(1, round(seconds / self.pipe_round_s))


DEFAULT_PLAN = Plan()
QUICK_PLAN = Plan(raw_s=2.0, face_s=2.0, stage_frames=10, pipe_warmup_s=1.0, pipe_s=8.0, unpaced_s=4.0,
                  sweep_warmup_s=3.0, sweep_s=8.0, static_warmup_s=1.0, static_s=15.0, rss_s=10.0,
                  max_cameras=8, refine=False)


def make_plan(quick: bool, duration: float | None, max_cameras: int | None) -> Plan:
    """The default or quick plan; --duration sets every measurement window (raw runs get a share)."""
    plan = QUICK_PLAN if quick else DEFAULT_PLAN
    changes: dict[str, Any] = {}
    if duration is not None:
        d = max(1.0, duration)
        warm = min(plan.sweep_warmup_s, max(1.0, d / 2))
        changes |= {"raw_s": min(plan.raw_s, max(1.0, d / 4)), "face_s": max(1.0, d / 4), "pipe_s": d,
                    "pipe_round_s": min(plan.pipe_round_s, d), "unpaced_s": max(1.0, d * 0.6),
                    "sweep_s": d, "static_s": d, "rss_s": d,
                    "pipe_warmup_s": min(plan.pipe_warmup_s, warm), "sweep_warmup_s": warm,
                    "static_warmup_s": min(plan.static_warmup_s, warm),
                    "stage_frames": min(plan.stage_frames, max(3, int(d * 4)))}
    if max_cameras is not None:
        changes["max_cameras"] = max(1, max_cameras)
    return Plan(**{**plan.__dict__, **changes})


# ----------------------------------------------------------------------------- machine figures


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def rss_mb() -> float | None:
    """Current resident set size, MiB (Linux)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def host_cpu_ticks() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of the whole machine, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, steal, total


@dataclass
class CpuWindow:
    """Process and host CPU over a window of wall time."""

    wall0: float = field(default_factory=time.monotonic)
    proc0: float = field(default_factory=time.process_time)
    host0: tuple[int, int, int] | None = field(default_factory=host_cpu_ticks)

    def result(self) -> dict[str, Any]:
        """CPU use since the window opened, % of all cores."""
        wall = time.monotonic() - self.wall0
        proc = time.process_time() - self.proc0
        out: dict[str, Any] = {"wall_s": round(wall, 2),
                               "cpu_pct": round(100.0 * proc / wall / cores(), 1) if wall > 0 else None}
        host1 = host_cpu_ticks()
        if self.host0 is not None and host1 is not None and host1[2] > self.host0[2]:
            total = host1[2] - self.host0[2]
            out["host_busy_pct"] = round(100.0 * (host1[0] - self.host0[0]) / total, 1)
            out["host_steal_pct"] = round(100.0 * (host1[1] - self.host0[1]) / total, 1)
        return out


def machine() -> dict[str, Any]:
    """What this ran on."""
    return {"cores": cores(), "cpu_count": os.cpu_count(), "onnxruntime": ort.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "cpu_model": _cpu_model(), "platform": platform.platform()}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# ----------------------------------------------------------------------------- shared helpers


def read_clip(limit: int | None = None) -> list[np.ndarray]:
    """Frames of the real clip, decoded once."""
    capture = cv2.VideoCapture(str(CLIP))
    frames: list[np.ndarray] = []
    try:
        while limit is None or len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(frame))
    finally:
        capture.release()
    if not frames:
        raise SystemExit(f"cannot decode {CLIP}")
    return frames


def camera_config(camera_id: str, url: str, *, detect_fps: float = DETECT_FPS,
                  motion: bool = True) -> CameraConfig:
    """A camera as in config/edge.example.yaml: one zone, one doorway line, gate and tamper on."""
    return CameraConfig.model_validate({
        "id": camera_id, "room_id": "r1", "url": url, "detect_fps": detect_fps,
        "zones": [{"id": "front", "polygon": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]}],
        "lines": [{"id": "door", "a": [0.1, 0.3], "b": [0.1, 0.9]}],
        "motion": {"enabled": motion},
    })


def load_models() -> VisionModels:
    """Both models, the production settings (threads=1 per call, 2 workers, face for blurring)."""
    return VisionModels(VisionConfig())


class EventSink:
    """Stands in for the store: safety events get a seq and are kept in memory."""

    def __init__(self) -> None:
        self.events: list[SafetyEvent] = []

    async def record(self, event: SafetyEvent) -> Envelope:
        """Accept one event."""
        self.events.append(event)
        return Envelope(event, len(self.events), time.time())


@dataclass
class Probe:
    """What one camera's analyses looked like (timed around CameraService._analyse)."""

    starts: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    ages: list[float] = field(default_factory=list)  # frame arrival -> analysis start


def instrument(service: CameraService) -> Probe:
    """Time every analysis of this camera (in the pool thread) without changing what it does."""
    probe = Probe()
    original = service._analyse

    def analyse(frame: Frame) -> FrameResult | None:
        start = time.monotonic()
        try:
            return original(frame)
        finally:
            probe.starts.append(start)
            probe.ages.append(start - frame.mono_ts)
            probe.durations.append(time.monotonic() - start)

    service._analyse = analyse  # type: ignore[method-assign]
    return probe


@contextlib.contextmanager
def timed_model(detector: Detector) -> Iterator[list[tuple[float, float]]]:
    """Record (start, seconds) of every session run of this detector while the block runs."""
    calls: list[tuple[float, float]] = []
    original = detector.infer

    def infer(tensor: np.ndarray) -> dict[str, np.ndarray]:
        start = time.monotonic()
        try:
            return original(tensor)
        finally:
            calls.append((start, time.monotonic() - start))

    detector.infer = infer  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        del detector.infer  # back to the class's method


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def ms(value: float | None) -> float | None:
    """Seconds to rounded milliseconds."""
    return None if value is None else round(value * 1000.0, 1)


@contextlib.contextmanager
def file_speed(speed: float | None) -> Iterator[None]:
    """Make CameraService's readers read files at `speed` (None: the reader's default, 1.0).

    CameraService builds its CameraReader without file_speed; only this benchmark process
    sees the patch, the pipeline code is unchanged.
    """
    if speed is None:
        yield
        return

    def reader(*args: Any, **kwargs: Any) -> CameraReader:
        return CameraReader(*args, **{**kwargs, "file_speed": speed})

    with mock.patch.object(cameras_module, "CameraReader", reader):
        yield


async def drive_cameras(cameras: list[CameraConfig], models: VisionModels, workdir: Path, *,
                        warmup_s: float, window_s: float) -> dict[str, Any]:
    """Run CameraServices side by side; measure a window after a warm-up."""
    timing = contextlib.ExitStack()
    bus = Bus()
    sink = EventSink()
    snapshots = SnapshotStore(workdir / "snapshots",
                              face_finder=models.regions_to_blur if models.face is not None else None,
                              blur_faces=models.face is not None)
    services = [CameraService(cam, None, models, bus, SystemClock(), sink.record, snapshots)
                for cam in cameras]
    probes = [instrument(service) for service in services]
    tasks = [asyncio.create_task(service.run(lambda: None), name=service.name) for service in services]
    queue_max = 0
    model_calls_timed = timing.enter_context(timed_model(models.person))
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
        model_calls = models.inferences - model0
        healths = [s.reader.health() if s.reader is not None else None for s in services]
        failed = [f"{t.get_name()}: {t.exception()!r}" for t in tasks if t.done() and not t.cancelled()
                  and t.exception() is not None]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        timing.close()
    wall = t1 - t0
    model_ms = [d for s, d in model_calls_timed if t0 <= s < t1]
    per_camera = []
    for cam, service, probe, done, calls, health in zip(cameras, services, probes, analysed, inferred,
                                                        healths, strict=True):
        inside = [i for i, s in enumerate(probe.starts) if t0 <= s < t1]
        durations = [probe.durations[i] for i in inside]
        ages = [probe.ages[i] for i in inside]
        half = len(ages) // 2
        # idle time of this camera between one analysis ending and its next starting (loop, hand-offs)
        gaps = [probe.starts[i + 1] - probe.starts[i] - probe.durations[i] for i in inside[:-1]
                if i + 1 < len(probe.starts)]
        per_camera.append({
            "id": cam.id,
            "detect_fps": round(done / wall, 3),
            "inferences_per_s": round(calls / wall, 3),
            "input_fps": round(health.input_fps, 2) if health else None,
            "online": bool(health and health.online),
            "dropped_frames": health.dropped if health else None,
            "analyse_ms_p50": ms(percentile(durations, 0.5)),
            "analyse_ms_p95": ms(percentile(durations, 0.95)),
            "analyse_ms_mean": ms(statistics.fmean(durations) if durations else None),
            "gap_ms_mean": ms(statistics.fmean(gaps) if gaps else None),
            "frame_age_ms_p95": ms(percentile(ages, 0.95)),
            # a growing backlog shows as frames getting older from the first half to the second
            "frame_age_ms_first_half": ms(statistics.fmean(ages[:half]) if half else None),
            "frame_age_ms_second_half": ms(statistics.fmean(ages[half:]) if half else None),
            "detections": service.detections,
        })
    return {"window_s": round(wall, 2), "cameras": per_camera, "model_inferences": model_calls,
            "session_run_ms_mean": ms(statistics.fmean(model_ms) if model_ms else None),
            "model_inferences_per_s": round(model_calls / wall, 3), "pool_queue_max": queue_max,
            "safety_events": [f"{e.type}:{e.data.get('kind')}" for e in sink.events],
            "snapshots": len(list((workdir / "snapshots").glob("*.jpg"))),
            "task_failures": failed, **usage}


# ----------------------------------------------------------------------------- phase a


def raw_rate(detector: Detector, tensors: Sequence[np.ndarray], seconds: float) -> dict[str, Any]:
    """Detector.infer in a loop on prepared tensors: calls/s and ms per call."""
    for tensor in tensors[:2]:
        detector.infer(tensor)  # warm-up: first runs allocate the arena
    cpu = CpuWindow()
    start = time.perf_counter()
    calls = 0
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        detector.infer(tensors[calls % len(tensors)])
        calls += 1
    usage = cpu.result()
    return {"calls": calls, "seconds": elapsed, "fps": round(calls / elapsed, 3),
            "ms_per_call": round(elapsed / calls * 1000, 2),
            "cpu_pct": usage["cpu_pct"], "host_busy_pct": usage.get("host_busy_pct")}


def stage_breakdown(models: VisionModels, frames: list[np.ndarray], camera: CameraConfig) -> dict[str, Any]:
    """The pipeline's per-frame work done serially on the same frames, each stage timed (ms, mean)."""
    detector = models.person
    tamper = TamperDetector(hold_s=camera.tamper.hold_s)
    gate = MotionGate(min_changed_fraction=camera.motion.min_changed_fraction,
                      recheck_s=camera.motion.recheck_s)
    analytics = CameraAnalytics(camera)
    times: dict[str, list[float]] = {k: [] for k in ("decode", "check_frame", "tamper", "motion_gate",
                                                     "prepare", "infer", "decode_nms", "analytics")}
    capture = cv2.VideoCapture(str(CLIP))
    try:
        for _ in range(len(frames)):
            t = time.perf_counter()
            ok, _image = capture.read()
            if not ok:
                break
            times["decode"].append(time.perf_counter() - t)
    finally:
        capture.release()
    prepare = detector._prepare
    prepared: list[float] = []

    def timed_prepare(image: np.ndarray) -> tuple[np.ndarray, Placement]:
        start = time.perf_counter()
        try:
            return prepare(image)
        finally:
            prepared.append(time.perf_counter() - start)

    # Detector.detect runs as it is; its preprocess and session run are timed from outside, and
    # what is left of it (check_frame, decoding the outputs, NMS, boxes to frame pixels) is the rest.
    detector._prepare = timed_prepare  # type: ignore[assignment]
    try:
        with timed_model(detector) as calls:
            for i, frame in enumerate(frames):
                now = i * 0.1
                t0 = time.perf_counter()
                image = check_frame(frame)
                t1 = time.perf_counter()
                tamper.update(image, now)
                t2 = time.perf_counter()
                gate.check(image, now)
                t3 = time.perf_counter()
                found = detector.detect(image)
                t4 = time.perf_counter()
                height, width = image.shape[:2]
                analytics.update(relative_boxes(found, width, height), now)
                t5 = time.perf_counter()
                infer = calls[-1][1]
                for key, took in (("check_frame", t1 - t0), ("tamper", t2 - t1), ("motion_gate", t3 - t2),
                                  ("prepare", prepared[-1]), ("infer", infer),
                                  ("decode_nms", t4 - t3 - prepared[-1] - infer), ("analytics", t5 - t4)):
                    times[key].append(took)
    finally:
        detector._prepare = prepare
    mean_ms = {k: round(statistics.fmean(v) * 1000, 2) for k, v in times.items() if v}
    # In the pipeline the pool thread does these in turn for one camera (the gate is off in phase a);
    # decoding runs on the reader thread, in parallel.
    serial = ("check_frame", "tamper", "prepare", "infer", "decode_nms", "analytics")
    serial_ms = sum(mean_ms[k] for k in serial)
    return {"frames": len(frames), "mean_ms": mean_ms, "serial_ms": round(serial_ms, 2),
            "serial_fps": round(1000.0 / serial_ms, 3)}


def interleaved(models: VisionModels, tensors: Sequence[np.ndarray], camera: CameraConfig, speed: float,
                plan: Plan, seconds: float, workdir: Path) -> dict[str, Any]:
    """Raw segments and pipeline segments in turn (raw, pipe, raw, ..., raw), so both see the same noise.

    Each pipeline segment is a fresh CameraService (warm-up, then the measured window); nothing
    else runs during a raw segment.
    """
    raws = [raw_rate(models.person, tensors, plan.raw_s)]
    pipes: list[dict[str, Any]] = []
    for i in range(plan.rounds(seconds)):
        with file_speed(speed):
            pipes.append(asyncio.run(drive_cameras([camera], models, workdir / f"round{i}",
                                                   warmup_s=plan.pipe_warmup_s,
                                                   window_s=seconds / plan.rounds(seconds))))
        raws.append(raw_rate(models.person, tensors, plan.raw_s))
    raw_fps = sum(r["calls"] for r in raws) / sum(r["seconds"] for r in raws)
    calls = sum(p["cameras"][0]["inferences_per_s"] * p["window_s"] for p in pipes)
    pipe_fps = calls / sum(p["window_s"] for p in pipes)
    per_round = [p["cameras"][0]["inferences_per_s"] / statistics.fmean([raws[i]["fps"], raws[i + 1]["fps"]])
                 for i, p in enumerate(pipes)]
    cpu = [p["cpu_pct"] for p in pipes if p["cpu_pct"] is not None]
    return {
        "raw_fps": round(raw_fps, 3), "pipeline_fps": round(pipe_fps, 3),
        "ratio": round(pipe_fps / raw_fps, 3),
        "ratio_per_round": [round(r, 3) for r in per_round],
        "raw_fps_per_segment": [r["fps"] for r in raws],
        "pipeline_fps_per_segment": [p["cameras"][0]["inferences_per_s"] for p in pipes],
        "pipeline_cpu_pct": round(statistics.fmean(cpu), 1) if cpu else None,
        "analyse_ms_p50": statistics.median([p["cameras"][0]["analyse_ms_p50"] or 0.0 for p in pipes]),
        # one inference's time in the pipeline, split: model call, rest of _analyse, idle gap
        "session_run_ms": _mean_of(p["session_run_ms_mean"] for p in pipes),
        "analyse_ms": _mean_of(p["cameras"][0]["analyse_ms_mean"] for p in pipes),
        "gap_ms": _mean_of(p["cameras"][0]["gap_ms_mean"] for p in pipes),
        "host_busy_pct": [p.get("host_busy_pct") for p in pipes],
        "input_fps": 10 * speed if speed > 0 else "unpaced",
    }


def _mean_of(values: Iterator[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 2) if present else None


def phase_a(plan: Plan) -> dict[str, Any]:
    """Raw model throughput vs one camera through the pipeline, and where the difference goes."""
    models = load_models()
    assert models.face is not None, "the production config loads the face model"
    frames = read_clip()
    picks = [frames[i] for i in range(0, len(frames), max(1, len(frames) // 10))][:10]
    person_tensors = [models.person._prepare(check_frame(f))[0] for f in picks]
    face_tensors = [models.face._prepare(check_frame(f))[0] for f in picks]
    raw_face = raw_rate(models.face, face_tensors, plan.face_s)
    camera = camera_config("pipe", f"file:{CLIP}", detect_fps=PIPELINE_DETECT_FPS, motion=False)
    step = max(1, len(frames) // plan.stage_frames)
    stages = stage_breakdown(models, frames[::step][: plan.stage_frames], camera)
    with tempfile.TemporaryDirectory(prefix="bench-vision-a-") as tmp:
        paced = interleaved(models, person_tensors, camera, FAST_FILE_SPEED, plan, plan.pipe_s,
                            Path(tmp) / "paced")
        unpaced = interleaved(models, person_tensors, camera, 0.0, plan, plan.unpaced_s,
                              Path(tmp) / "unpaced")
    models.close()
    pipeline = paced["pipeline_fps"]
    return {
        "raw_person_fps": paced["raw_fps"],
        "raw_person_ms": round(1000.0 / paced["raw_fps"], 2),
        "raw_face_fps": raw_face["fps"],
        "raw_face": raw_face,
        "pipeline_fps": pipeline,
        "pipeline_vs_raw": paced["ratio"],
        "pipeline_ms_per_inference": round(1000.0 / pipeline, 2) if pipeline else None,
        "pipeline": paced,
        "pipeline_unpaced_fps": unpaced["pipeline_fps"],
        "pipeline_unpaced_vs_raw": unpaced["ratio"],
        "pipeline_unpaced": unpaced,
        "stages": stages,
        "setup": {"threads": models.config.threads, "workers": models.config.workers,
                  "input_fps": 10 * FAST_FILE_SPEED, "detect_fps": PIPELINE_DETECT_FPS,
                  "motion_gate": False, "tamper": True, "raw_tensors": len(picks),
                  "rounds": plan.rounds(plan.pipe_s), "raw_segment_s": plan.raw_s},
    }


# ----------------------------------------------------------------------------- phases b, c, d


def phase_b(plan: Plan, count: int) -> dict[str, Any]:
    """N file cameras at 10 fps input, 2 fps detection each: do they keep up, and at what cost?"""
    rss_start = rss_mb()
    models = load_models()
    cameras = [camera_config(f"cam{i + 1}", f"file:{CLIP}") for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="bench-vision-b-") as tmp:
        run = asyncio.run(drive_cameras(cameras, models, Path(tmp), warmup_s=plan.sweep_warmup_s,
                                        window_s=plan.sweep_s))
    models.close()
    rates = [c["detect_fps"] for c in run["cameras"]]
    floor = RATE_SHARE * DETECT_FPS
    reasons = []
    if min(rates) < floor:
        reasons.append(f"slowest camera analysed {min(rates):.2f} fps < {floor:.2f}")
    if run["cpu_pct"] is not None and run["cpu_pct"] > CPU_BUDGET_PCT:
        reasons.append(f"CPU {run['cpu_pct']:.0f}% > {CPU_BUDGET_PCT:.0f}%")
    if run["task_failures"]:
        reasons.append("a camera task failed")
    if not all(c["online"] for c in run["cameras"]):
        reasons.append("a camera was offline")
    inputs = [c["input_fps"] for c in run["cameras"] if c["input_fps"] is not None]
    return {
        "n": count, "pass": not reasons, "why_not": "; ".join(reasons) or None,
        "detect_fps_min": round(min(rates), 3), "detect_fps_mean": round(statistics.fmean(rates), 3),
        "input_fps_min": min(inputs) if inputs else None,
        "cpu_pct": run["cpu_pct"], "host_busy_pct": run.get("host_busy_pct"),
        "host_steal_pct": run.get("host_steal_pct"),
        "inferences_per_s": run["model_inferences_per_s"],
        "inferred_share": round(sum(c["inferences_per_s"] for c in run["cameras"])
                                / max(sum(rates), 1e-9), 3),
        "rss_mb": round(rss_mb() or 0.0, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_at_start_mb": round(rss_start or 0.0, 1),
        "analyse_ms_p95_max": max((c["analyse_ms_p95"] or 0.0) for c in run["cameras"]),
        "frame_age_ms_p95_max": max((c["frame_age_ms_p95"] or 0.0) for c in run["cameras"]),
        "pool_queue_max": run["pool_queue_max"],
        "run": run,
    }


def static_video(path: Path) -> dict[str, Any]:
    """One real frame of the clip repeated with mild fixed-seed sensor noise, mp4-encoded at 10 fps."""
    base = read_clip(STATIC_FRAME_INDEX + 1)[STATIC_FRAME_INDEX].astype(np.float32)
    height, width = base.shape[:2]
    rng = np.random.default_rng(STATIC_SEED)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (width, height))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path}")
    try:
        for _ in range(STATIC_FRAMES):
            noisy = base + rng.normal(0.0, STATIC_NOISE_SIGMA, base.shape).astype(np.float32)
            writer.write(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return {"frames": STATIC_FRAMES, "fps": 10, "source_frame": STATIC_FRAME_INDEX,
            "noise_sigma": STATIC_NOISE_SIGMA, "seed": STATIC_SEED, "codec": "mp4v"}


def phase_c(plan: Plan) -> dict[str, Any]:
    """Person-model calls per minute on a static scene, motion gate on vs off, side by side."""
    models = load_models()
    with tempfile.TemporaryDirectory(prefix="bench-vision-c-") as tmp:
        video = Path(tmp) / "static.mp4"
        made = static_video(video)
        cameras = [camera_config("static-gate-on", f"file:{video}", motion=True),
                   camera_config("static-gate-off", f"file:{video}", motion=False)]
        run = asyncio.run(drive_cameras(cameras, models, Path(tmp), warmup_s=plan.static_warmup_s,
                                        window_s=plan.static_s))
    models.close()
    on, off = run["cameras"]
    per_min_on = round(on["inferences_per_s"] * 60.0, 2)
    per_min_off = round(off["inferences_per_s"] * 60.0, 2)
    return {
        "static_calls_per_min_gate_on": per_min_on,
        "static_calls_per_min_gate_off": per_min_off,
        "motion_gate_ratio": round(per_min_off / per_min_on, 2) if per_min_on > 0 else None,
        "static_analysed_fps_gate_on": on["detect_fps"], "static_analysed_fps_gate_off": off["detect_fps"],
        "recheck_s": cameras[0].motion.recheck_s, "video": made, "run": run,
    }


def phase_d(plan: Plan) -> dict[str, Any]:
    """Peak RSS of a fresh process running 4 cameras with both models loaded."""
    rss_imports = rss_mb()
    models = load_models()
    rss_models = rss_mb()
    cameras = [camera_config(f"cam{i + 1}", f"file:{CLIP}") for i in range(4)]
    with tempfile.TemporaryDirectory(prefix="bench-vision-d-") as tmp:
        run = asyncio.run(drive_cameras(cameras, models, Path(tmp), warmup_s=0.0, window_s=plan.rss_s))
    models.close()
    return {
        "peak_rss_mb_4_cameras": round(peak_rss_mb(), 1),
        "rss_after_imports_mb": round(rss_imports or 0.0, 1),
        "rss_after_models_mb": round(rss_models or 0.0, 1),
        "rss_end_mb": round(rss_mb() or 0.0, 1),
        "face_model_loaded": models.face is not None,
        "snapshots_taken": run["snapshots"],
        "inferences_per_s": run["model_inferences_per_s"],
        "cpu_pct": run["cpu_pct"],
        "seconds": plan.rss_s,
    }


def run_phase(name: str, plan: Plan, count: int) -> dict[str, Any]:
    """Run one phase in this process (a child of the orchestrator)."""
    if name == "a":
        return phase_a(plan)
    if name == "b":
        return phase_b(plan, count)
    if name == "c":
        return phase_c(plan)
    if name == "d":
        return phase_d(plan)
    raise SystemExit(f"unknown phase {name!r}")


# ----------------------------------------------------------------------------- orchestrator


def child(name: str, plan: Plan, args: argparse.Namespace, count: int = 0) -> dict[str, Any]:
    """Run a phase in a fresh subprocess and return what it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", name, "--cameras", str(count)]
    if args.quick:
        command.append("--quick")
    if args.duration is not None:
        command += ["--duration", str(args.duration)]
    if args.max_cameras is not None:
        command += ["--max-cameras", str(args.max_cameras)]
    segments = plan.rounds(plan.pipe_s) + plan.rounds(plan.unpaced_s)
    expected = {"a": (segments + 2) * (plan.raw_s + plan.pipe_warmup_s) + plan.face_s + plan.pipe_s
                + plan.unpaced_s + 30,
                "b": plan.sweep_warmup_s + plan.sweep_s + 2 * count,
                "c": plan.static_warmup_s + plan.static_s,
                "d": plan.rss_s}[name]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3 * expected + 120, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            result["phase_wall_s"] = round(time.monotonic() - started, 1)
            return result
    tail = "\n".join((proc.stderr or "").splitlines()[-30:])
    raise SystemExit(f"phase {name} (cameras={count}) failed with exit code {proc.returncode}:\n{tail}")


def sweep(plan: Plan, args: argparse.Namespace,
          say: Callable[[str], None]) -> tuple[int, list[dict[str, Any]]]:
    """Phase b for N = 1, 2, 4, 6, ... until a run fails (then N-1 if the gap was 2)."""
    counts = [n for n in SWEEP_START if n <= plan.max_cameras]
    while counts[-1] + 2 <= plan.max_cameras and len(counts) < 64:
        counts.append(counts[-1] + 2)
    rows: list[dict[str, Any]] = []
    best = 0
    for n in counts:
        row = child("b", plan, args, n)
        rows.append(row)
        say(f"   b: N={n:<2} {'pass' if row['pass'] else 'FAIL'}  detect fps min {row['detect_fps_min']:.2f}"
            f"  CPU {row['cpu_pct']}%  {row['inferences_per_s']:.1f} inf/s")
        if not row["pass"]:
            if plan.refine and n - best == 2 and best > 0:
                extra = child("b", plan, args, n - 1)
                rows.append(extra)
                say(f"   b: N={n - 1:<2} {'pass' if extra['pass'] else 'FAIL'}  detect fps min "
                    f"{extra['detect_fps_min']:.2f}  CPU {extra['cpu_pct']}%  "
                    f"{extra['inferences_per_s']:.1f} inf/s")
                if extra["pass"]:
                    best = n - 1
            break
        best = n
    rows.sort(key=lambda r: int(r["n"]))
    return best, rows


def _explain_ratio(a: dict[str, Any]) -> list[str]:
    """pipeline_vs_raw as (model share of each cycle) x (raw model speed / model speed in the pipeline)."""
    pipe = a["pipeline"]
    run, analyse, gap = pipe["session_run_ms"], pipe["analyse_ms"], pipe["gap_ms"]
    if not (run and analyse and gap is not None):
        return []
    share = run / (analyse + gap)
    speed = a["raw_person_ms"] / run
    return [f"   so pipeline_vs_raw ~= model share of each cycle {share:.2f} x raw/in-pipeline model speed "
            f"{speed:.2f} = {share * speed:.2f}"]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _span(values: Sequence[float], digits: int = 2) -> str:
    """'low..high' of a few figures."""
    if not values:
        return "-"
    return f"{min(values):.{digits}f}..{max(values):.{digits}f}"


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    """'met' / 'MISSED' / 'n/a' against a target."""
    if value is None:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The flat figures asked for, plus the detail of every phase."""
    a, c, d = results.get("a", {}), results.get("c", {}), results.get("d", {})
    per_n = [{k: row[k] for k in ("n", "pass", "why_not", "detect_fps_min", "detect_fps_mean", "cpu_pct",
                                  "inferences_per_s", "rss_mb", "peak_rss_mb", "analyse_ms_p95_max",
                                  "frame_age_ms_p95_max", "pool_queue_max", "inferred_share",
                                  "host_busy_pct", "host_steal_pct")}
             for row in results.get("b", [])]
    out: dict[str, Any] = {
        "pipeline_vs_raw": a.get("pipeline_vs_raw"),
        "raw_person_fps": a.get("raw_person_fps"),
        "raw_face_fps": a.get("raw_face_fps"),
        "pipeline_fps": a.get("pipeline_fps"),
        "pipeline_unpaced_fps": a.get("pipeline_unpaced_fps"),
        "max_cameras": results.get("max_cameras"),
        "max_cameras_capped": results.get("max_cameras_capped"),
        "per_n": per_n,
        "static_calls_per_min_gate_on": c.get("static_calls_per_min_gate_on"),
        "static_calls_per_min_gate_off": c.get("static_calls_per_min_gate_off"),
        "motion_gate_ratio": c.get("motion_gate_ratio"),
        "peak_rss_mb_4_cameras": d.get("peak_rss_mb_4_cameras"),
        "machine": machine(),
        "targets": {
            "pipeline_vs_raw": verdict(a.get("pipeline_vs_raw"), TARGETS["pipeline_vs_raw"]),
            "max_cameras": ("n/a (the sweep stopped at --max-cameras before a run failed)"
                            if results.get("max_cameras_capped")
                            and (results.get("max_cameras") or 0) < TARGETS["max_cameras"]
                            else verdict(results.get("max_cameras"), TARGETS["max_cameras"])),
            "motion_gate_ratio": verdict(c.get("motion_gate_ratio"), TARGETS["motion_gate_ratio"]),
            "peak_rss_mb_4_cameras": verdict(d.get("peak_rss_mb_4_cameras"),
                                             TARGETS["peak_rss_mb_4_cameras"], higher_is_better=False),
        },
        "detail": {"a": a, "c": c, "d": d, "b": results.get("b", [])},
        "total_wall_s": results.get("total_wall_s"),
    }
    return out


def report(summary: dict[str, Any]) -> str:
    """The figures as text."""
    m = summary["machine"]
    t = summary["targets"]
    detail = summary["detail"]
    lines = [f"vision benchmark on {m['cores']} cores ({m['cpu_model']}), onnxruntime {m['onnxruntime']}, "
             f"OpenCV {m['opencv']}, Python {m['python']}"]
    a = detail["a"]
    if a:
        st = a["stages"]["mean_ms"]
        setup = a["setup"]
        pipe = a["pipeline"]
        rest = (pipe["analyse_ms"] - pipe["session_run_ms"]
                if pipe["analyse_ms"] is not None and pipe["session_run_ms"] is not None else None)
        lines += [
            "",
            f"a. raw ONNX vs pipeline (threads={setup['threads']} per call, one call at a time; "
            f"{setup['rounds']} pipeline segments alternating with "
            f"{setup['raw_segment_s']:g} s raw segments)",
            f"   raw person (nanodet 416x416): {a['raw_person_fps']:.2f} inf/s ({a['raw_person_ms']:.1f} ms; "
            f"segments {_span(a['pipeline']['raw_fps_per_segment'])})",
            f"   raw face (blazeface):         {a['raw_face_fps']:.2f} inf/s "
            f"({a['raw_face']['ms_per_call']:.1f} ms)",
            f"   pipeline, 1 camera, input {setup['input_fps']:g} fps, detect_fps {setup['detect_fps']:g}, "
            f"gate off, tamper on: {a['pipeline_fps']:.2f} inf/s "
            f"({a['pipeline_ms_per_inference']:.1f} ms each, "
            f"process CPU {a['pipeline']['pipeline_cpu_pct']}%; "
            f"segments {_span(a['pipeline']['pipeline_fps_per_segment'])})",
            f"   pipeline_vs_raw = {a['pipeline_vs_raw']:.3f}  (target >= {TARGETS['pipeline_vs_raw']}: "
            f"{t['pipeline_vs_raw']}; per segment {_span(a['pipeline']['ratio_per_round'], 3)})",
            f"   per pipeline inference: session.run {_num(pipe['session_run_ms'])} ms (raw loop "
            f"{a['raw_person_ms']:.1f}), rest of the analysis {_num(rest)} ms, camera loop idle between "
            f"analyses {_num(pipe['gap_ms'])} ms",
            *_explain_ratio(a),
            f"   same, file read unpaced (decoder flat out): {a['pipeline_unpaced_fps']:.2f} inf/s "
            f"(x{a['pipeline_unpaced_vs_raw']:.3f} raw, process CPU "
            f"{a['pipeline_unpaced']['pipeline_cpu_pct']}%, session.run "
            f"{_num(a['pipeline_unpaced']['session_run_ms'])} ms)",
            f"   serial stages per frame, ms ({a['stages']['frames']} frames, one pass): "
            + ", ".join(f"{k} {v:.2f}" for k, v in st.items()),
            f"   pool-thread work per inference (check+tamper+prepare+infer+nms+analytics) = "
            f"{a['stages']['serial_ms']:.1f} ms, of which the model {st['infer']:.1f} ms: "
            f"the pipeline can reach "
            f"at most ~{st['infer'] / a['stages']['serial_ms']:.2f} x raw while it does this work in turn",
        ]
    rows = detail["b"]
    if rows:
        lines += ["",
                  f"b. N cameras, 10 fps input, {DETECT_FPS:g} fps detection each, gate + tamper on "
                  f"(pass: every camera >= {RATE_SHARE * DETECT_FPS:.2f} fps, CPU <= {CPU_BUDGET_PCT:g}%)",
                  "    N  result  detect fps min/mean  CPU %  host %  inf/s   RSS MB  analyse p95 ms  "
                  "frame age p95 ms  pool queue max"]
        for r in rows:
            lines.append(
                f"   {r['n']:>2}  {'pass' if r['pass'] else 'FAIL':<6}  {r['detect_fps_min']:>6.2f} /"
                f" {r['detect_fps_mean']:<6.2f}     {r['cpu_pct']:>5}  {r['host_busy_pct'] or 0:>6}  "
                f"{r['inferences_per_s']:>5.1f}   {r['rss_mb']:>6.0f}  {r['analyse_ms_p95_max']:>14}  "
                f"{r['frame_age_ms_p95_max']:>16}  {r['pool_queue_max']:>14}"
                + (f"   ({r['why_not']})" if r["why_not"] else ""))
        capped = " (every N tried passed: raise --max-cameras)" if summary["max_cameras_capped"] else ""
        lines.append(f"   max_cameras = {summary['max_cameras']}{capped}  "
                     f"(target >= {TARGETS['max_cameras']}: {t['max_cameras']})")
    c = detail["c"]
    if c:
        ratio = c["motion_gate_ratio"]
        lines += ["",
                  f"c. static scene (clip frame {c['video']['source_frame']} + noise sigma "
                  f"{c['video']['noise_sigma']:g}, mp4v), 10 fps input, 2 fps detection, "
                  f"{c['run']['window_s']:.0f} s side by side",
                  f"   person-model calls/min: gate on {c['static_calls_per_min_gate_on']:.1f}, "
                  f"gate off {c['static_calls_per_min_gate_off']:.1f} -> "
                  + (f"{ratio:.1f}x fewer" if ratio is not None
                     else "ratio undefined (no call with the gate on)")
                  + f"  (target >= {TARGETS['motion_gate_ratio']:g}x: {t['motion_gate_ratio']}; "
                  f"recheck every {c['recheck_s']:g} s)"]
    d = detail["d"]
    if d:
        lines += ["",
                  f"d. peak RSS, fresh process, 4 cameras, person + face models, {d['seconds']:g} s: "
                  f"{d['peak_rss_mb_4_cameras']:.0f} MB  (target <= {TARGETS['peak_rss_mb_4_cameras']:g}: "
                  f"{t['peak_rss_mb_4_cameras']})",
                  f"   RSS after imports {d['rss_after_imports_mb']:.0f} MB, after loading models "
                  f"{d['rss_after_models_mb']:.0f} MB, at the end {d['rss_end_mb']:.0f} MB; "
                  f"{d['snapshots_taken']} blurred snapshots taken"]
    if summary.get("total_wall_s") is not None:
        lines += ["", f"total {summary['total_wall_s']:.0f} s"]
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    """Run the selected phases, each in its own subprocess, one after the other."""
    phases = args.only or "abcd"

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    results: dict[str, Any] = {}
    if "a" in phases:
        say("a: raw ONNX vs one camera through the pipeline ...")
        results["a"] = child("a", plan, args)
    if "b" in phases:
        say("b: cameras per box ...")
        results["max_cameras"], results["b"] = sweep(plan, args, say)
        results["max_cameras_capped"] = all(row["pass"] for row in results["b"])
    if "c" in phases:
        say("c: motion gate on a static scene ...")
        results["c"] = child("c", plan, args)
    if "d" in phases:
        say("d: peak RSS with 4 cameras ...")
        results["d"] = child("d", plan, args)
    results["total_wall_s"] = round(time.monotonic() - started, 1)
    return summarise(results)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments; orchestrate, or run one phase when called as a child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object at the end (the text goes to stderr)")
    parser.add_argument("--duration", type=float, help="seconds per measurement window (default 20-30)")
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke version")
    parser.add_argument("--max-cameras", type=int, help="largest N the camera sweep tries")
    parser.add_argument("--only", help="phases to run, e.g. 'ac' (default abcd)")
    parser.add_argument("--phase", choices="abcd", help=argparse.SUPPRESS)
    parser.add_argument("--cameras", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(name)s: %(message)s")
    plan = make_plan(args.quick, args.duration, args.max_cameras)
    if args.phase:
        result = run_phase(args.phase, plan, args.cameras)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    summary = orchestrate(args, plan)
    text = report(summary)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(summary, indent=1))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
