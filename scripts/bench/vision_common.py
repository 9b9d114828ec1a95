"""scripts/bench_vision.py: constants, run plans, machine figures and small shared helpers."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
import onnxruntime as ort

import edge.sources.cameras as cameras_module
from edge.config_vision import CameraConfig, VisionConfig
from edge.events import Envelope, SafetyEvent
from edge.vision.camera_reader import CameraReader
from edge.vision.models import VisionModels

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"
RESULT_PREFIX = "BENCH-RESULT "
DETECT_FPS = 2.0  # production default per camera
RATE_SHARE = 0.95  # a camera keeps up when it analyses >= this share of detect_fps
CPU_BUDGET_PCT = 80.0  # of all cores
FAST_FILE_SPEED = 3.0  # phase a: the 10 fps clip read at 30 fps, always a new frame waiting
PIPELINE_DETECT_FPS = 30.0  # the config's maximum: the loop never waits for its period
STATIC_FRAME_INDEX = 0
STATIC_NOISE_SIGMA = 2.0  # grey levels; a real sensor's noise in a lit room
STATIC_SEED = 20240611
STATIC_FRAMES = 150
SWEEP_START = (1, 2, 4)  # then +2 each step
TARGETS = {"pipeline_vs_raw": 0.9, "max_cameras": 8, "motion_gate_ratio": 5.0, "peak_rss_mb_4_cameras": 500.0}


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


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def ms(value: float | None) -> float | None:
    """Seconds to rounded milliseconds."""
    return None if value is None else round(value * 1000.0, 2)


def mean_ms(values: Sequence[float]) -> float | None:
    """Mean of durations in seconds, as rounded milliseconds (None for none)."""
    return ms(statistics.fmean(values)) if values else None


def mean_of(values: Iterable[float | None], digits: int = 2) -> float | None:
    """Mean of the figures that are there, rounded (None when none is)."""
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), digits) if present else None


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
