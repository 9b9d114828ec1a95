"""The console in a real browser (Debian's chromium, Playwright): log in, see a live alert, ack it."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from edge.events import SafetyEvent, Severity
from edge.store import DB_FILENAME
from edge.store.database import Database
from edge.users import Role, hash_password
from tests.conftest import REPO, Mosquitto
from tests.gateway_harness import gateway_config_path, running_gateway

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ARTIFACTS = Path(os.environ.get("EDGE_TEST_ARTIFACTS", REPO / "tests" / "artifacts"))

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="LOUD SKIP: Debian's chromium is not installed (scripts/test installs it when run as root: "
           "apt-get install chromium); the browser test of the console did not run",
)


async def test_a_guard_sees_a_panic_alert_live_and_acknowledges_it(tmp_path: Path,
                                                                   mosquitto: Mosquitto) -> None:
    from playwright.async_api import async_playwright, expect

    path = gateway_config_path(tmp_path, mosquitto, [], console={"enabled": True, "port": 0})
    (tmp_path / "data").mkdir()
    db = Database(tmp_path / "data" / DB_FILENAME)
    db.add_user("guard", Role.SECURITY, hash_password(PASSWORD), time.time(), "test")
    db.add_user("admin", Role.ADMIN, hash_password(PASSWORD), time.time(), "test")
    db.close()
    async with running_gateway(path) as gateway, async_playwright() as playwright:
        assert gateway.console is not None
        async with asyncio.timeout(10):
            while not gateway.console.bound_port:
                await asyncio.sleep(0.05)
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 412, "height": 900})  # a phone
            await page.goto(f"http://127.0.0.1:{gateway.console.bound_port}/")
            await page.fill("#username", "guard")
            await page.fill("#password", PASSWORD)
            await page.click("#login-button")
            await expect(page.locator("#alerts-view")).to_be_visible(timeout=10_000)
            await expect(page.locator("#conn")).to_contain_text("Live", timeout=10_000)

            pressed = time.monotonic()
            await gateway.record_event(SafetyEvent("panic_button", Severity.CRITICAL, time.time(),
                                                   "device:n1", "r1", {"device_id": "n1"}))
            card = page.locator("#alerts li.alert-critical")
            await expect(card).to_have_count(1, timeout=2_000)  # live, within 2 s, no reload
            appeared_s = time.monotonic() - pressed
            await expect(card).to_contain_text("PANIC BUTTON")

            await card.get_by_role("button", name="Acknowledge").click()
            await page.fill("#confirm-note", "on my way")
            await page.click("#confirm-ok")
            await expect(card).to_contain_text("Acknowledged", timeout=5_000)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "console-acknowledged.png"), full_page=True)
        finally:
            await browser.close()
        assert gateway.alerts is not None
        (alert,) = gateway.alerts.book.open_alerts()
        assert alert.acknowledged_by == "guard"
        assert appeared_s < 2.0


async def test_an_admin_sees_rooms_controls_a_projector_and_reads_the_audit_log(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.async_api import async_playwright, expect

    from firmware_bridge.pjlink.simulator import SimulatedProjector

    monkeypatch.setenv("PJLINK_TEST_PASSWORD", "JBMIAProjectorLink")
    projector = SimulatedProjector("JBMIAProjectorLink", warm_up_s=0.1, cool_down_s=0.1)
    port = await projector.start()
    device = {"id": "proj1", "name": "Projector 1", "type": "pjlink", "room_id": "r1", "host": "127.0.0.1",
              "port": port, "password_env": "PJLINK_TEST_PASSWORD", "poll_s": 0.3, "timeout_s": 0.5}
    path = gateway_config_path(tmp_path, mosquitto, [device], console={"enabled": True, "port": 0})
    (tmp_path / "data").mkdir()
    db = Database(tmp_path / "data" / DB_FILENAME)
    db.add_user("ada", Role.ADMIN, hash_password(PASSWORD), time.time(), "test")
    db.close()
    try:
        async with running_gateway(path) as gateway, async_playwright() as playwright:
            assert gateway.console is not None
            async with asyncio.timeout(10):
                while not gateway.console.bound_port:
                    await asyncio.sleep(0.05)
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = await browser.new_page(viewport={"width": 412, "height": 900})
                await page.goto(f"http://127.0.0.1:{gateway.console.bound_port}/#rooms")
                await page.fill("#username", "ada")
                await page.fill("#password", PASSWORD)
                await page.click("#login-button")
                room = page.locator('#rooms li[data-room-id="r1"]')
                await expect(room).to_contain_text("Projector 1", timeout=10_000)
                await expect(room.locator(".dot-on")).to_have_count(1, timeout=10_000)  # polled every 5 s

                await page.click('a[data-view="devices"]')
                card = page.locator('#devices li[data-device-id="proj1"]')
                form = card.locator("form", has_text="power")
                await form.locator("select").select_option("on")
                await form.get_by_role("button", name="Send power").click()
                await expect(page.locator("#confirm-text")).to_contain_text("Projector 1")
                await page.click("#confirm-ok")
                await expect(card.locator(".result")).to_contain_text("power: ok", timeout=10_000)
                assert projector.power in ("warming", "on")
                await page.screenshot(path=str(ARTIFACTS / "console-devices.png"), full_page=True)

                await page.click('a[data-view="audit"]')
                await expect(page.locator("#audit-rows")).to_contain_text("command.finished", timeout=5_000)
                await page.click("#audit-verify")
                await expect(page.locator("#audit-status")).to_contain_text("Chain intact", timeout=5_000)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "console-audit.png"), full_page=True)
            finally:
                await browser.close()
    finally:
        await projector.stop()
