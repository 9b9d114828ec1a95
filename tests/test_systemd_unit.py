"""systemd/edge.service: Type=notify with a watchdog, its own user, and hardening scored by systemd."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

UNIT = REPO / "systemd" / "edge.service"


def directives() -> dict[str, list[str]]:
    """Every key of the unit with all its values (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_the_unit_runs_the_daemon_as_its_own_user_with_notify_watchdog_and_a_closed_device_policy() -> None:
    unit = directives()
    assert unit["Service.Type"] == ["notify"] and unit["Service.WatchdogSec"] == ["30"]
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.User"] == ["edge"] and set(unit["Service.SupplementaryGroups"][0].split()) == {
        "dialout", "video"}
    for key in ("StateDirectory", "ConfigurationDirectory", "LogsDirectory"):
        assert unit[f"Service.{key}"] == ["edge"]
    assert unit["Service.CapabilityBoundingSet"] == [""]  # no capabilities at all
    assert unit["Service.DevicePolicy"] == ["closed"]
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-video4linux rw"} <= set(unit["Service.DeviceAllow"])
    assert unit["Service.ProtectSystem"] == ["strict"] and unit["Service.NoNewPrivileges"] == ["yes"]
    assert unit["Service.RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in unit["Service.SystemCallFilter"] and unit["Service.MemoryMax"]
    assert "/etc/edge/edge.yaml" in unit["Service.ExecStart"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize("name", ["edge.service", "edge-backup.service"])
def test_systemd_scores_the_units_exposure_at_3_or_below(name: str) -> None:
    run = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT.with_name(name))],
                         capture_output=True, text=True, timeout=60)
    found = re.search(rf"Overall exposure level for {re.escape(name)}: ([0-9.]+)", run.stdout + run.stderr)
    assert found, run.stdout[-2000:] + run.stderr[-2000:]
    assert float(found.group(1)) <= 3.0


def test_the_backup_timer_runs_edge_backup_daily_keeping_a_week() -> None:
    service = (UNIT.with_name("edge-backup.service")).read_text()
    timer = (UNIT.with_name("edge-backup.timer")).read_text()
    assert "ExecStart=/opt/edge/venv/bin/edge backup --config /etc/edge/edge.yaml --keep 7" in service
    assert "User=edge" in service and "Type=oneshot" in service
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer


def test_the_unit_reloads_with_sighup_and_starts_after_the_local_broker() -> None:
    unit = directives()
    assert unit["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "mosquitto.service" in unit["Unit.After"][0].split()
    # Wants, not Requires: a gateway pointed at another broker still starts without a local one.
    assert "mosquitto.service" in unit["Unit.Wants"][0].split() and "Unit.Requires" not in unit
