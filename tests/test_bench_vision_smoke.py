"""scripts/bench_vision.py runs end to end and prints its figures (a smoke test: no performance targets)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "bench_vision.py"


@pytest.mark.timeout(110)
def test_bench_vision_quick_json_prints_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", "--duration", "2", "--max-cameras", "1"],
        capture_output=True, text=True, timeout=100, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)

    for key in ("pipeline_vs_raw", "raw_person_fps", "raw_face_fps", "pipeline_fps"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert isinstance(result["max_cameras"], int) and result["max_cameras"] in (0, 1)
    assert result["max_cameras_capped"] in (True, False)
    (row,) = result["per_n"]
    assert row["n"] == 1 and isinstance(row["pass"], bool)
    for key in ("detect_fps_min", "detect_fps_mean", "cpu_pct", "inferences_per_s", "rss_mb",
                "stage_ms_p95_max", "infer_ms_p95_max"):
        assert isinstance(row[key], (int, float)) and row[key] >= 0, key
    # the pipeline's inference cycle is split from _stage, _infer and session.run timings
    cycle = result["detail"]["a"]["pipeline"]["cycle"]
    assert cycle["inferences"] > 1
    for key in ("cycle_ms", "session_run_ms", "infer_ms", "stage_ms", "model_idle_ms"):
        assert isinstance(cycle[key], float) and cycle[key] >= 0, key
    for key in ("static_calls_per_min_gate_on", "static_calls_per_min_gate_off"):
        assert isinstance(result[key], (int, float)) and result[key] >= 0, key
    assert result["static_calls_per_min_gate_off"] > 0
    assert result["motion_gate_ratio"] is None or isinstance(result["motion_gate_ratio"], float)
    assert isinstance(result["peak_rss_mb_4_cameras"], float) and result["peak_rss_mb_4_cameras"] > 50
    machine = result["machine"]
    assert isinstance(machine["cores"], int) and machine["cores"] >= 1
    assert isinstance(machine["onnxruntime"], str) and machine["onnxruntime"]
    assert set(result["targets"]) == {"pipeline_vs_raw", "max_cameras", "motion_gate_ratio",
                                      "peak_rss_mb_4_cameras"}
    assert "pipeline_vs_raw" in proc.stderr  # the text report goes to stderr with --json
