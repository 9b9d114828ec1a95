"""scripts/bench_vision.py phase a: raw ONNX throughput vs one camera through the pipeline.

Raw: `Detector.infer` (session.run) in a loop, one call at a time, on tensors prepared up front,
with the production session (the config's threads per call). Pipeline: one CameraService,
motion gate off, tamper on, detect_fps 30, the clip read at 3x (30 fps). The two alternate
(raw, pipe, raw, ..., raw) so both see the same noise on a shared box; the ratio is taken over
the sums.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.vision_common import (
    CLIP,
    FAST_FILE_SPEED,
    PIPELINE_DETECT_FPS,
    CpuWindow,
    Plan,
    camera_config,
    file_speed,
    load_models,
    mean_of,
    read_clip,
)
from bench.vision_probe import drive_cameras, timed_session
from edge.config_vision import CameraConfig
from edge.vision.camera_analytics import CameraAnalytics, relative_boxes
from edge.vision.detector import Detector
from edge.vision.models import VisionModels
from edge.vision.motion import MotionGate
from edge.vision.tamper import TamperDetector

CYCLE_KEYS = ("cycle_ms", "session_run_ms", "infer_ms", "stage_ms", "model_busy_pct", "model_idle_ms",
              "model_idle_ms_p95")


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
    """The pipeline's per-frame steps done one after the other on the same frames, each timed (ms, mean).

    _stage = tamper (at most once a second) + motion gate (off in phase a) + Detector.prepare;
    _infer = Detector.finish = session.run + decode/NMS/boxes to frame pixels; then the loop
    applies the result (analytics). Decoding runs on the reader thread.
    """
    detector = models.person
    tamper = TamperDetector(hold_s=camera.tamper.hold_s)
    gate = MotionGate(min_changed_fraction=camera.motion.min_changed_fraction,
                      recheck_s=camera.motion.recheck_s)
    analytics = CameraAnalytics(camera)
    times: dict[str, list[float]] = {k: [] for k in ("decode", "tamper", "motion_gate", "prepare",
                                                     "session_run", "decode_nms", "analytics")}
    capture = cv2.VideoCapture(str(CLIP))
    try:
        for _ in range(len(frames)):
            t = time.monotonic()
            ok, _image = capture.read()
            if not ok:
                break
            times["decode"].append(time.monotonic() - t)
    finally:
        capture.release()
    with timed_session(detector) as calls:
        for i, frame in enumerate(frames):
            now = i * 0.1
            t0 = time.monotonic()
            tamper.update(frame, now)
            t1 = time.monotonic()
            gate.check(frame, now)
            t2 = time.monotonic()
            prepared = detector.prepare(frame)
            t3 = time.monotonic()
            found = detector.finish(prepared)
            t4 = time.monotonic()
            height, width = frame.shape[:2]
            analytics.update(relative_boxes(found, width, height), now)
            t5 = time.monotonic()
            run = calls[-1].end - calls[-1].start
            for key, took in (("tamper", t1 - t0), ("motion_gate", t2 - t1), ("prepare", t3 - t2),
                              ("session_run", run), ("decode_nms", t4 - t3 - run), ("analytics", t5 - t4)):
                times[key].append(took)
    mean_ms = {k: round(statistics.fmean(v) * 1000, 2) for k, v in times.items() if v}
    # One camera's critical path is its model runs back to back (a per-camera turn): the next
    # frame's _stage and this frame's decode, NMS and analytics run beside the model.
    critical = mean_ms["session_run"]
    serial = critical + mean_ms["decode_nms"] + mean_ms["analytics"] + mean_ms["prepare"]  # no overlap
    return {"frames": len(frames), "mean_ms": mean_ms, "critical_ms": round(critical, 2),
            "serial_ms": round(serial, 2), "ceiling": round(mean_ms["session_run"] / critical, 3)}


def _pooled(pipes: list[dict[str, Any]]) -> dict[str, float | None]:
    """The segments' cycle figures, weighted by how many inferences each had."""
    out: dict[str, float | None] = {}
    for key in CYCLE_KEYS:
        pairs = [(p["cycle"][key], p["cycle"]["inferences"]) for p in pipes if p["cycle"][key] is not None]
        weight = sum(n for _, n in pairs)
        out[key] = round(sum(v * n for v, n in pairs) / weight, 2) if weight else None
    out["serial_stages"] = sum(p["cycle"]["serial_stages"] for p in pipes)
    out["other_model_calls"] = sum(p["cycle"]["other_model_calls"] for p in pipes)
    out["other_model_ms"] = round(sum(p["cycle"]["other_model_ms"] for p in pipes), 1)
    out["inferences"] = sum(p["cycle"]["inferences"] for p in pipes)
    return out


def interleaved(models: VisionModels, tensors: Sequence[np.ndarray], camera: CameraConfig, speed: float,
                plan: Plan, seconds: float, workdir: Path) -> dict[str, Any]:
    """Raw segments and pipeline segments in turn (raw, pipe, raw, ..., raw), so both see the same noise.

    Each pipeline segment is a fresh CameraService (warm-up, then the measured window); nothing
    else runs during a raw segment.
    """
    raws = [raw_rate(models.person, tensors, plan.raw_s)]
    pipes: list[dict[str, Any]] = []
    rounds = plan.rounds(seconds)
    for i in range(rounds):
        with file_speed(speed):
            pipes.append(asyncio.run(drive_cameras([camera], models, workdir / f"round{i}",
                                                   warmup_s=plan.pipe_warmup_s, window_s=seconds / rounds)))
        raws.append(raw_rate(models.person, tensors, plan.raw_s))
    raw_fps = sum(r["calls"] for r in raws) / sum(r["seconds"] for r in raws)
    calls = sum(p["cameras"][0]["inferences_per_s"] * p["window_s"] for p in pipes)
    pipe_fps = calls / sum(p["window_s"] for p in pipes)
    per_round = [p["cameras"][0]["inferences_per_s"] / statistics.fmean([raws[i]["fps"], raws[i + 1]["fps"]])
                 for i, p in enumerate(pipes)]
    return {
        "raw_fps": round(raw_fps, 3), "pipeline_fps": round(pipe_fps, 3),
        "ratio": round(pipe_fps / raw_fps, 3),
        "ratio_per_round": [round(r, 3) for r in per_round],
        "raw_fps_per_segment": [r["fps"] for r in raws],
        "raw_cpu_pct": mean_of(r["cpu_pct"] for r in raws),
        "pipeline_fps_per_segment": [p["cameras"][0]["inferences_per_s"] for p in pipes],
        "pipeline_cpu_pct": mean_of(p["cpu_pct"] for p in pipes),
        "input_fps_measured": mean_of(p["cameras"][0]["input_fps"] for p in pipes),
        "cycle": _pooled(pipes),
        "snapshots": sum(p["snapshots"] for p in pipes),
        "host_busy_pct": [p.get("host_busy_pct") for p in pipes],
        "host_steal_pct": [p.get("host_steal_pct") for p in pipes],
        "input_fps": 10 * speed if speed > 0 else "unpaced",
    }


def _named(detector: Detector) -> str:
    width, height = detector.card.input.size
    return f"{detector.card.name} {width}x{height}"


def phase_a(plan: Plan) -> dict[str, Any]:
    """Raw model throughput vs one camera through the pipeline, and where the difference goes."""
    models = load_models()
    assert models.face is not None, "the production config loads the face model"
    frames = read_clip()
    picks = [frames[i] for i in range(0, len(frames), max(1, len(frames) // 10))][:10]
    person_tensors = [models.person.prepare(f).tensor for f in picks]
    face_tensors = [models.face.prepare(f).tensor for f in picks]
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
                  "person_model": _named(models.person), "face_model": _named(models.face),
                  "input_fps": 10 * FAST_FILE_SPEED, "detect_fps": PIPELINE_DETECT_FPS,
                  "motion_gate": False, "tamper": True, "raw_tensors": len(picks),
                  "rounds": plan.rounds(plan.pipe_s), "unpaced_rounds": plan.rounds(plan.unpaced_s),
                  "raw_segment_s": plan.raw_s},
    }
