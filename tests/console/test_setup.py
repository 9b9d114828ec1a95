"""First admin by the one-time setup token: issued and logged at start, used once, throttled, audited."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from edge.alerts.service import AlertService
from edge.bus import Bus
from edge.clock import ManualClock, SystemClock
from edge.config import EdgeConfig
from edge.console import ConsoleServer, create_app
from edge.console.routes_setup import offer_setup
from edge.events import Envelope, SafetyEvent
from edge.store import Store
from edge.users import LoginThrottle, Role, hash_password
from tests.console.harness import FAST, PASSWORD, login, running_console

NEW_PASSWORD = "a long admin passphrase"


@dataclass
class Fresh:
    """A console whose store has no admin yet (one viewer only)."""

    app: FastAPI
    store: Store
    clock: ManualClock

    def client(self) -> httpx.AsyncClient:
        """A fresh browser."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")

    def issue(self) -> str:
        """Issue a setup token as the console does at start."""
        token: str = self.app.state.console.setup.issue()
        return token


@asynccontextmanager
async def fresh_console(tmp_path: Path) -> AsyncIterator[Fresh]:
    """A console app over a real store without any admin."""
    store = await Store.open(tmp_path)
    try:
        config = EdgeConfig.model_validate({"site_id": "s", "gateway_id": "g", "rooms": [{"id": "r1"}]})
        bus = Bus()

        async def record(event: SafetyEvent) -> Envelope:
            return await store.add_event(event)

        await store.add_user("vera", Role.VIEWER, hash_password(PASSWORD, FAST), "test")
        clock = ManualClock()
        app = create_app(store=store, alerts=AlertService(config, bus, SystemClock(), record), bus=bus,
                         snapshots=None, clock=clock, hasher=FAST,
                         throttle=LoginThrottle(user_threshold=3, addr_threshold=100))
        yield Fresh(app, store, clock)
    finally:
        await store.close()


def setup_body(token: str, username: str = "root", password: str = NEW_PASSWORD) -> dict[str, str]:
    return {"token": token, "username": username, "password": password}


async def audit_actions(store: Store) -> list[tuple[str, str, str]]:
    page = await store.audit_page(500)
    return [(e["actor"], e["action"], e["target"]) for e in reversed(page)]


async def test_the_right_token_creates_the_admin_logs_in_and_is_spent(tmp_path: Path) -> None:
    async with fresh_console(tmp_path) as console, console.client() as client:
        assert (await client.get("/api/setup")).json() == {"required": False}  # nothing issued yet
        token = console.issue()
        assert len(token) >= 32 and token not in repr(vars(console.app.state.console.setup))
        assert (await client.get("/api/setup")).json() == {"required": True}
        response = await client.post("/api/setup", json=setup_body(token, username=" Root "))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["username"] == "root" and body["role"] == "admin" and len(body["csrf_token"]) >= 40
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert (await client.get("/api/me")).json()["role"] == "admin"
        assert (await client.get("/api/audit")).status_code == 200
        user = await console.store.get_user("root")
        assert user is not None and user.role is Role.ADMIN and user.password_hash.startswith("$argon2id$")
        assert (await audit_actions(console.store))[-2:] == [("setup", "user.add", "root"),
                                                            ("root", "console.login", "root")]
        again = await client.post("/api/setup", json=setup_body(token, username="other"))
        assert again.status_code == 409
        assert (await client.get("/api/setup")).json() == {"required": False}
        assert await console.store.get_user("other") is None
        async with console.client() as browser:
            await login(browser, "root", NEW_PASSWORD)  # the stored hash is a real one


async def test_a_wrong_token_is_403_audited_and_throttled(tmp_path: Path) -> None:
    async with fresh_console(tmp_path) as console, console.client() as client:
        token = console.issue()
        for _ in range(3):
            response = await client.post("/api/setup", json=setup_body("guess" + token[5:]))
            assert response.status_code == 403
        failed = [a for a in await audit_actions(console.store) if a[1] == "console.setup_failed"]
        assert failed == [("anonymous", "console.setup_failed", "setup")] * 3
        locked = await client.post("/api/setup", json=setup_body(token))
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert await console.store.count_admins() == 0
        console.clock.advance(31)
        assert (await client.post("/api/setup", json=setup_body(token))).status_code == 200


async def test_bad_input_is_refused_and_leaves_the_token_usable(tmp_path: Path) -> None:
    async with fresh_console(tmp_path) as console, console.client() as client:
        token = console.issue()
        for body in (setup_body(token, password="short"), setup_body(token, username="9lives"),
                     setup_body(token, password="root" + NEW_PASSWORD), {"token": token},
                     setup_body("t" * 129)):
            response = await client.post("/api/setup", json=body)
            assert response.status_code == 422, (body, response.text)
        taken = await client.post("/api/setup", json=setup_body(token, username="vera"))
        assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
        assert (await client.get("/api/setup")).json() == {"required": True}
        assert (await client.post("/api/setup", json=setup_body(token))).status_code == 200


async def test_an_admin_made_elsewhere_ends_the_offer(tmp_path: Path) -> None:
    async with fresh_console(tmp_path) as console, console.client() as client:
        token = console.issue()
        await console.store.add_user("cli-admin", Role.ADMIN, hash_password(PASSWORD, FAST), "cli")
        assert (await client.post("/api/setup", json=setup_body(token))).status_code == 409
        assert (await client.get("/api/setup")).json() == {"required": False}
        assert await console.store.get_user("root") is None


async def test_no_token_is_offered_when_an_admin_exists(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        with caplog.at_level(logging.WARNING):
            assert await offer_setup(console.app.state.console, "http://x:1/") is None
        assert "setup token" not in caplog.text
        assert (await client.get("/api/setup")).json() == {"required": False}
        assert (await client.post("/api/setup", json=setup_body("x" * 32))).status_code == 409


async def test_the_console_logs_a_token_at_start_that_works_over_http(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with fresh_console(tmp_path) as console:
        server = ConsoleServer(console.app, "127.0.0.1", 0)
        ready = asyncio.Event()
        with caplog.at_level(logging.WARNING, logger="edge.console"):
            task = asyncio.create_task(server.run(ready.set))
            try:
                async with asyncio.timeout(5):
                    await ready.wait()
                records = [r for r in caplog.records if "setup token" in r.getMessage()]
                assert [r.levelno for r in records] == [logging.WARNING]
                messages = [r.getMessage() for r in records]
                url = f"http://127.0.0.1:{server.bound_port}/"
                match = re.fullmatch(rf"console setup: no admin yet; open {re.escape(url)} and use setup "
                                     r"token (\S+) \(or run: edge user add NAME --role admin\)", messages[0])
                assert match is not None, messages[0]
                async with httpx.AsyncClient(base_url=url) as client:
                    response = await client.post("/api/setup", json=setup_body(match.group(1)))
                    assert response.status_code == 200 and response.json()["role"] == "admin"
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
