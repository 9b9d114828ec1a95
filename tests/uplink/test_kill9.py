"""kill -9 the daemon 50 times while safety events flow and the central broker is down."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, edge_env


def test_fifty_kill9s_with_the_broker_down_lose_no_accepted_event_and_leave_no_seq_gap() -> None:
    # scripts/soak_uplink_kill9.py: a real gateway process records safety events and prints each
    # one the store accepted; it is SIGKILLed at random moments (a fifth during start-up), 50
    # times; then the central broker comes up and a fresh gateway drains the outbox.
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "soak_uplink_kill9.py"), "--kills", "50"],
                         cwd=REPO, env=edge_env(), capture_output=True, text=True, timeout=600)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["kills"] == 50
    assert result["accepted"] > 100  # events really flowed between the kills
    assert result["lost"] == 0, result
    assert result["seq_gaps"] == 0, result  # every stored seq arrived, none skipped or reused
    assert result["received"] >= result["accepted"]
    assert result["historical"] == result["received"] + result["duplicates"]  # all replayed
    assert run.returncode == 0
