"""scripts/bench_console.py runs end to end and prints its figures (a smoke test: no performance targets)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "bench_console.py"
ENDPOINTS = ("alerts_open", "history_first_page", "history_walk", "rooms")


@pytest.mark.timeout(170)
def test_bench_console_quick_json_prints_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--duration", "1", "--alerts", "600", "--open", "20"],
        capture_output=True, text=True, timeout=160, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)

    assert result["stored_alerts"] == 600 and result["open_alerts"] == 20
    assert result["stored_alert_events"] > 600  # raised plus acknowledged/resolved transitions
    assert isinstance(result["cores"], int) and result["cores"] >= 1
    # The gateway replayed the stored open alerts (the demo may have raised a few of its own).
    assert result["open_alerts_served_at_start"] >= 20
    assert isinstance(result["gateway_idle_cpu_percent"], float)
    assert set(result["endpoints"]) == set(ENDPOINTS)
    for endpoint in ENDPOINTS:
        for concurrency in ("c1", "c8"):
            row = result["endpoints"][endpoint][concurrency]
            assert row["requests"] > 0 and row["errors"] == 0, (endpoint, concurrency, row)
            for key in ("requests_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms",
                        "gateway_cpu_percent", "client_cpu_percent"):
                assert isinstance(row[key], (int, float)) and row[key] >= 0, (endpoint, key)
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
    # 600 alerts are 12+ pages of 50: the walk went past the first page.
    assert result["endpoints"]["history_walk"]["c8"]["deepest_page"] > 1
    summary = result["demo_summary"]
    assert summary is not None and summary["errors"] == 0 and summary["detections"] > 0
    assert result["demo_tracebacks"] == 0
    assert "req/s" in proc.stderr  # the text report goes to stderr
