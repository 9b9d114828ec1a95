#!/usr/bin/env python3
"""Vision benchmark: raw ONNX vs the camera pipeline, cameras per box, motion gate, memory.

Run with the project's venv: `.venv/bin/python scripts/bench_vision.py [--json] [--duration S]`
(`--quick`: a ~2 minute smoke version). Figures, all measured in one run on this machine:

a. raw ONNX throughput of the person and face models (`Detector.infer` in a loop on input
   tensors prepared up front from frames of the real clip, one call at a time, the config's
   threads per call) vs one camera through the whole pipeline (CameraService: reader thread,
   `_stage` = tamper check at most once a second + preprocessing, overlapped with `_infer` =
   session.run + decode + NMS of the previous frame, then tracking/zones/lines on the loop)
   with the motion gate off, detect_fps 30 and the clip read at 3x its speed (30 fps, so a
   new frame is always waiting). The box is shared and noisy, so raw and pipeline segments
   alternate (raw, pipe, raw, ..., raw; each pipeline segment a fresh CameraService) and the
   ratio is taken over the sums. Inside the pipeline every `_stage`, `_infer` and person-model
   session.run is timed (wrapped on the instances, the code is unchanged), which splits one
   inference cycle into model time, the rest of `_infer`, waiting for `_stage` and the loop's
   hand-off; a serial per-step timing on the clip's frames says what each step costs. The
   pipeline is also run with the file read unpaced (decoding flat out, as file_speed=0 does).
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
(`--phase a|b|c|d`), which print one `BENCH-RESULT {json}` line; the code lives in
scripts/bench/vision_*.py. Nothing here asserts timing: the figures go in a report. To profile
a phase by hand: `py-spy record -f raw -t --nonblocking -o prof.txt -- .venv/bin/python
scripts/bench_vision.py --phase a` (blocking or --native sampling stalls the pool and distorts
the figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.vision_common import RESULT_PREFIX, SWEEP_START, Plan, make_plan  # noqa: E402
from bench.vision_phases import run_phase  # noqa: E402
from bench.vision_report import report, summarise  # noqa: E402


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


def _say_row(row: dict[str, Any], say: Callable[[str], None]) -> None:
    say(f"   b: N={row['n']:<2} {'pass' if row['pass'] else 'FAIL'}  "
        f"detect fps min {row['detect_fps_min']:.2f}"
        f"  CPU {row['cpu_pct']}%  {row['inferences_per_s']:.1f} inf/s")


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
        _say_row(row, say)
        if not row["pass"]:
            if plan.refine and n - best == 2 and best > 0:
                extra = child("b", plan, args, n - 1)
                rows.append(extra)
                _say_row(extra, say)
                if extra["pass"]:
                    best = n - 1
            break
        best = n
    rows.sort(key=lambda r: int(r["n"]))
    return best, rows


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
