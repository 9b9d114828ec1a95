"""scripts/bench_uplink.py runs end to end and prints its figures (a smoke test: no timing targets)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "bench_uplink.py"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.timeout(300)
def test_bench_uplink_quick_json_has_every_figure() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True,
                          timeout=290, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)

    live = result["live"]
    for key in ("uplink_per_s", "recorded_per_s", "store_only_per_s", "raw_paho_per_s", "raw_aiomqtt_per_s",
                "uplink_vs_raw", "uplink_vs_raw_aiomqtt", "payload_bytes", "gateway_log_pending_publish"):
        assert _number(live[key]), (key, live[key])
    assert live["uplink_per_s"] > 0 and live["raw_paho_per_s"] > 0 and live["payload_bytes"] > 100

    drain = result["drain"]
    assert drain["backlog"] == 2000 and drain["complete"] is True  # every queued event arrived
    for key in ("drain_per_s", "drain_s", "default_per_s", "default_delivered", "fill_per_s"):
        assert _number(drain[key]) and drain[key] > 0, (key, drain[key])

    kill9 = result["kill9"]
    assert kill9["events"] == 200
    assert kill9["uplink_lost"] == 0 and kill9["uplink_received"] == 200  # nothing accepted is lost
    # The bridge's no-kill control is a figure for the report, not a property of our code: in
    # some quick runs the bridge forwards only a few of its queued messages (Mosquitto's, not ours).
    assert _number(kill9["bridge_no_kill_received"]) and 0 <= kill9["bridge_no_kill_received"] <= 200
    assert _number(kill9["bridge_lost"]) and 0 <= kill9["bridge_lost"] <= 200

    rss = result["rss"]
    assert rss["backlog_rows"] == 20_000
    for key in ("rss_empty_mb", "rss_backlog_mb", "uplink_added_mb", "rss_draining_peak_mb", "drain_per_s"):
        assert _number(rss[key]), (key, rss[key])
    assert rss["rss_empty_mb"] > 10 and rss["drained_in_window"] > 0

    assert set(result["pass"]) == {"uplink_vs_raw", "uplink_lost", "uplink_added_mb"}
    assert all(isinstance(v, bool) for v in result["pass"].values())
    assert result["config"]["quick"] is True
    assert "c. lost of 200" in proc.stderr  # the short text report goes to stderr
