"""The alerts service in a gateway: a stored event or a camera raises one alert, stored then published."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from edge.alerts.lifecycle import AlertActionRefused
from edge.alerts.service import AlertService
from edge.bus import Bus
from edge.clock import SystemClock
from edge.config import EdgeConfig
from edge.events import Envelope, SafetyEvent, Severity
from edge.store import DB_FILENAME
from tests.conftest import REPO, Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway, watching

CLIP = REPO / "tests" / "fixtures" / "vtest-cut.mp4"


async def test_panic_raises_once_and_a_person_acknowledges_and_resolves() -> None:
    config = EdgeConfig.model_validate({"site_id": "s", "gateway_id": "g", "rooms": [{"id": "r1"}]})
    bus = Bus()
    recorded: list[SafetyEvent] = []

    async def record(event: SafetyEvent) -> Envelope:
        recorded.append(event)
        envelope = Envelope(event, len(recorded), event.occurred_at)
        bus.publish(envelope)
        return envelope

    service = AlertService(config, bus, SystemClock(), record)
    task = asyncio.create_task(service.run(lambda: None))
    try:
        now = time.time()
        press = SafetyEvent("panic_button", Severity.CRITICAL, now, "device:n1", "r1", {"device_id": "n1"})
        for seq in (1, 2):  # pressed twice: still one situation
            bus.publish(Envelope(press, 100 + seq, now))
        async with asyncio.timeout(5):
            while not recorded:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        (raised,) = recorded
        assert raised.type == "alert" and raised.data["action"] == "raised" and raised.data["kind"] == "panic"
        assert raised.severity is Severity.CRITICAL and raised.room_id == "r1"
        alert_id = raised.data["alert_id"]
        await service.acknowledge(alert_id, "guard1", "on my way")
        await service.resolve(alert_id, "guard1", "pupil pressed it by mistake")
        assert [e.data["action"] for e in recorded] == ["raised", "acknowledged", "resolved"]
        assert recorded[-1].data["actor"] == "guard1" and recorded[-1].data["state"] == "resolved"
        with pytest.raises(AlertActionRefused):
            await service.acknowledge(alert_id, "guard2", "")
        assert service.raised == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_person_after_hours_is_an_intrusion_stored_then_published(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    prefix = f"t/{tmp_path.name}"
    cams = [{"id": "cam1", "room_id": "r1", "url": f"file:{CLIP}", "detect_fps": 4, "smoothing_s": 1,
             "zones": [{"id": "path", "polygon": [[0.3, 0.3], [0.95, 0.3], [0.95, 0.75], [0.3, 0.75]]}]}]
    rooms = [{"id": "r1", "name": "Room 1", "schedule": {"timezone": "Asia/Shanghai", "periods": []}}]
    alerts = {"rules": {"intrusion": {"grace_s": 1}}}
    path = gateway_config_path(tmp_path, mosquitto, [], cameras=cams, rooms=rooms, alerts=alerts)
    async with watching(mosquitto, f"{prefix}/#") as mqtt, running_gateway(path):
        event = await mqtt.wait_json(f"{prefix}/event", lambda b: b["type"] == "alert", timeout=30)
        assert event["data"]["kind"] == "intrusion" and event["data"]["action"] == "raised"
        assert event["severity"] == "critical" and "after hours" in event["data"]["title"]
        assert event["data"]["camera_id"] == "cam1"
    db = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    stored = db.execute("SELECT seq, type FROM events WHERE event_id = ?", [event["event_id"]]).fetchone()
    assert stored == (event["seq"], "alert")  # the published alert is the stored one, same seq


async def test_open_alerts_survive_a_restart(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [])

    def press() -> SafetyEvent:
        return SafetyEvent("panic_button", Severity.CRITICAL, time.time(), "device:n1", "r1",
                           {"device_id": "n1"})

    async with running_gateway(path) as gateway:
        assert gateway.alerts is not None
        await gateway.record_event(press())
        async with asyncio.timeout(5):
            while not gateway.alerts.book.open_alerts():
                await asyncio.sleep(0.05)
        (alert,) = gateway.alerts.book.open_alerts()
        await gateway.alerts.acknowledge(alert.alert_id, "guard1", "on my way")
    async with running_gateway(path) as gateway:
        assert gateway.alerts is not None
        (again,) = gateway.alerts.book.open_alerts()
        assert (again.alert_id, again.state.value, again.acknowledged_by) == \
            (alert.alert_id, "acknowledged", "guard1")
        await gateway.record_event(press())  # the same situation: no second alert
        await asyncio.sleep(1.5)
        assert [a.alert_id for a in gateway.alerts.book.open_alerts()] == [alert.alert_id]
        assert gateway.alerts.raised == 0
