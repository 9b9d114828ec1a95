"""scripts/bench_vision.py phases b, c and d (cameras per box, motion gate, memory) and the dispatcher."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.vision_common import (
    CLIP,
    CPU_BUDGET_PCT,
    DETECT_FPS,
    RATE_SHARE,
    STATIC_FRAME_INDEX,
    STATIC_FRAMES,
    STATIC_NOISE_SIGMA,
    STATIC_SEED,
    Plan,
    camera_config,
    load_models,
    peak_rss_mb,
    read_clip,
    rss_mb,
)
from bench.vision_phase_a import phase_a
from bench.vision_probe import drive_cameras


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
        "session_run_ms_mean": run["session_run_ms_mean"],
        "stage_ms_p95_max": max((c["stage_ms_p95"] or 0.0) for c in run["cameras"]),
        "infer_ms_p95_max": max((c["infer_ms_p95"] or 0.0) for c in run["cameras"]),
        "frame_age_ms_p95_max": max((c["frame_age_ms_p95"] or 0.0) for c in run["cameras"]),
        "result_age_ms_p95_max": max((c["result_age_ms_p95"] or 0.0) for c in run["cameras"]),
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
