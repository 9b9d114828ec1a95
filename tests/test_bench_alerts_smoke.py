"""scripts/bench_alerts.py runs end to end and prints its figures (a smoke test: no timing targets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "bench_alerts.py"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.timeout(200)
def test_bench_alerts_quick_json_has_every_figure() -> None:
    # Without Debian's chromium the page half is left out, never the whole test.
    browser = CHROMIUM.exists()
    command = [sys.executable, str(SCRIPT), "--quick"] + ([] if browser else ["--no-browser"])
    proc = subprocess.run(command, capture_output=True, text=True, timeout=190, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)

    assert result["browser"] is browser
    assert result["broker"] in ("mosquitto", "embedded")
    assert result["targets"] == {"mqtt_p99_ms": 200.0, "page_p99_ms": 1000.0}
    assert result["config"]["panic_presses"] == 3 and result["config"]["intrusion_people"] == 2
    paths = (("panic", 3, "event_on_mqtt_ms"), ("intrusion", 2, "presence_on_mqtt_ms"))
    for name, presses, upstream in paths:
        figures = result[name]
        assert figures["missed_mqtt"] == 0, name
        assert figures["to_mqtt_ms"]["n"] == presses, name
        wheres = ["to_mqtt_ms", upstream] + (["to_page_ms", "to_page_dom_ms"] if browser else [])
        for where in wheres:
            block = figures[where]
            values = [block[key] for key in ("p50", "p95", "p99", "max")]
            assert all(isinstance(v, float) and v > 0 for v in values), (name, where, block)
            assert values == sorted(values), (name, where, block)  # p50 <= p95 <= p99 <= max
        # the alert comes after the event it was raised from
        assert figures[upstream]["p50"] <= figures["to_mqtt_ms"]["p50"], name
        verdicts = result["pass"]
        assert isinstance(verdicts[f"{name}_mqtt"], bool)
        if browser:
            assert figures["missed_page"] == 0 and figures["to_page_ms"]["n"] == presses, name
            assert isinstance(verdicts[f"{name}_page"], bool)
        else:
            assert figures["to_page_ms"]["n"] == 0 and verdicts[f"{name}_page"] is None
    assert result["intrusion"]["false_alerts"] == 0
    assert "panic: MQTT p50" in proc.stderr  # the short text report goes to stderr
