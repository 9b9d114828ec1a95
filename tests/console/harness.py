"""A console app over a real store, bus and alerts service, with one open panic alert."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from argon2 import PasswordHasher
from fastapi import FastAPI

from edge.alerts.service import AlertService
from edge.bus import Bus
from edge.clock import ManualClock, SystemClock
from edge.config import EdgeConfig
from edge.console import create_app
from edge.events import Envelope, SafetyEvent, Severity
from edge.rooms_view import RoomsView
from edge.store import DB_FILENAME, Store
from edge.users import LoginThrottle, Role, hash_password
from edge.vision.snapshots import SnapshotStore

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery"
USERS = {"vera": Role.VIEWER, "sam": Role.SECURITY, "olga": Role.OPERATOR, "ada": Role.ADMIN}


@dataclass
class Console:
    """Everything a console test touches."""

    app: FastAPI
    store: Store
    alerts: AlertService
    bus: Bus
    snapshots: SnapshotStore
    clock: ManualClock
    data_dir: Path

    def client(self) -> httpx.AsyncClient:
        """A fresh browser: no cookies."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")

    def audit(self) -> list[dict[str, Any]]:
        """Every audit row, oldest first."""
        db = sqlite3.connect(self.data_dir / DB_FILENAME)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT actor, action, target, detail FROM audit ORDER BY id")
            return [dict(r) for r in rows]
        finally:
            db.close()

    def open_alert_id(self) -> str:
        """The id of the one open panic alert."""
        (alert,) = self.alerts.book.open_alerts()
        return alert.alert_id


async def press_panic(bus: Bus, room: str = "r1") -> None:
    """Publish a stored-looking panic press, as the recorder would."""
    now = time.time()
    press = SafetyEvent("panic_button", Severity.CRITICAL, now, "device:n1", room, {"device_id": "n1"})
    bus.publish(Envelope(press, 1, now))


@asynccontextmanager
async def running_console(tmp_path: Path, **app_kwargs: Any) -> AsyncIterator[Console]:
    """A console app whose alert service has raised one panic alert."""
    store = await Store.open(tmp_path)
    config = EdgeConfig.model_validate({"site_id": "s", "gateway_id": "g",
                                        "rooms": [{"id": "r1"}, {"id": "r2"}]})
    bus = Bus()

    async def record(event: SafetyEvent) -> Envelope:
        envelope = await store.add_event(event)
        bus.publish(envelope)
        return envelope

    alerts = AlertService(config, bus, SystemClock(), record)
    task = asyncio.create_task(alerts.run(lambda: None))
    try:
        for name, role in USERS.items():
            await store.add_user(name, role, hash_password(PASSWORD, FAST), "test")
        snapshots = SnapshotStore(tmp_path / "snaps", face_finder=None, blur_faces=False)
        clock = ManualClock()
        app_kwargs.setdefault("throttle", LoginThrottle(user_threshold=3, addr_threshold=100))
        app_kwargs.setdefault("hasher", FAST)
        app_kwargs.setdefault("rooms", RoomsView(bus, config))
        app_kwargs.setdefault("config", config)
        app = create_app(store=store, alerts=alerts, bus=bus, snapshots=snapshots, clock=clock, **app_kwargs)
        await press_panic(bus)
        async with asyncio.timeout(5):
            while not alerts.book.open_alerts():
                await asyncio.sleep(0.02)
        yield Console(app, store, alerts, bus, snapshots, clock, tmp_path)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Log in; return the CSRF token."""
    response = await client.post("/api/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def tiny_jpeg_image() -> np.ndarray:
    """A small BGR image to store as a snapshot."""
    return np.full((16, 16, 3), 128, dtype=np.uint8)


async def logout(client: httpx.AsyncClient) -> None:
    """Log out the client's session."""
    csrf = (await client.get("/api/me")).json()["csrf_token"]
    assert (await client.post("/api/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
