"""The console served by a whole gateway: log in over real HTTP and see a panic alert raised."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from edge.events import SafetyEvent, Severity
from edge.store import DB_FILENAME
from edge.store.database import Database
from edge.users import Role, hash_password
from tests.conftest import Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway

PASSWORD = "correct horse battery"


async def test_the_daemon_serves_the_console_with_live_alerts(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = gateway_config_path(tmp_path, mosquitto, [], console={"enabled": True, "port": 0})
    (tmp_path / "data").mkdir()
    db = Database(tmp_path / "data" / DB_FILENAME)
    db.add_user("guard", Role.SECURITY, hash_password(PASSWORD), time.time(), "test")
    db.close()
    async with running_gateway(path) as gateway:
        assert gateway.console is not None
        async with asyncio.timeout(10):
            while not gateway.console.bound_port:
                await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{gateway.console.bound_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/api/health")).json() == {"status": "ok"}
            assert (await http.get("/api/alerts")).status_code == 401
            login = await http.post("/api/login", json={"username": "guard", "password": PASSWORD})
            assert login.status_code == 200, login.text
            csrf = login.json()["csrf_token"]
            press = SafetyEvent("panic_button", Severity.CRITICAL, time.time(), "device:n1", "r1",
                                {"device_id": "n1"})
            await gateway.record_event(press)  # stored, then on the bus: the rules see it
            async with asyncio.timeout(10):
                while not (alerts := (await http.get("/api/alerts")).json()):
                    await asyncio.sleep(0.1)
            (alert,) = alerts
            ack = await http.post(f"/api/alerts/{alert['alert_id']}/ack", json={"note": "on my way"},
                                  headers={"X-CSRF-Token": csrf})
            assert ack.status_code == 200, ack.text
            assert (await http.get(f"/api/alerts/{alert['alert_id']}")).json()["state"] == "acknowledged"
