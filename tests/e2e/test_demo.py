"""`edge demo --duration`: the whole gateway, the JSON summary, a continued database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from edge.demo import SUMMARY_FIELDS
from edge.store import DB_FILENAME
from tests.conftest import edge_command, edge_env


def run_demo(data_dir: Path, seconds: float) -> dict[str, int]:
    result = subprocess.run(
        [*edge_command(), "demo", "--duration", str(seconds), "--data-dir", str(data_dir),
         "--http-port", "0", "--uplink", "mqtt://127.0.0.1:1"],
        env=edge_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(SUMMARY_FIELDS) <= set(summary)
    assert all(isinstance(v, int) for v in summary.values())
    return summary


def test_demo_runs_and_a_second_run_continues_the_database(tmp_path: Path) -> None:
    first = run_demo(tmp_path, 5)
    assert first["readings"] > 0 and first["errors"] == 0 and first["devices_online"] >= 3
    # The demo camera plays a real clip of people walking: the person model finds them.
    assert first["detections"] > 0 and first["occupancy_updates"] > 0
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    after_first = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    conn.close()
    assert after_first == first["readings"]

    second = run_demo(tmp_path, 2)
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    total = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    audits = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert total == after_first + second["readings"]
    assert audits == 5  # the demo admin once, start and stop of both runs, one chain
