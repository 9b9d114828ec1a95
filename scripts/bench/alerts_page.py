"""The console page in Debian's chromium (Playwright): when does an alert's card appear and go?"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from bench.alerts_rig import PASSWORD, USER

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Runs in the page: stamps (Date.now(), wall-clock ms like Python's time.time()) each alert card
# the moment it is put in #alerts, and again in the next animation frame (just before it is
# painted). The list is rebuilt on every update, so only an id's first appearance counts.
OBSERVER = """
() => {
  window.__benchSeen = {};
  const list = document.getElementById("alerts");
  new MutationObserver(() => {
    const dom = Date.now();
    const fresh = [];
    for (const li of list.querySelectorAll("li[data-alert-id]")) {
      const id = li.dataset.alertId;
      if (!(id in window.__benchSeen)) { window.__benchSeen[id] = {dom: dom, paint: null}; fresh.push(id); }
    }
    if (fresh.length) requestAnimationFrame(() => {
      const paint = Date.now();
      for (const id of fresh) window.__benchSeen[id].paint = paint;
    });
  }).observe(list, {childList: true, subtree: true});
}
"""


def chromium_available() -> bool:
    """Whether Debian's chromium is installed."""
    return Path(CHROMIUM).exists()


class ConsolePage:
    """A guard logged in to the console in a headless chromium, watching the live alert list."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._playwright: Any = None
        self._browser: Any = None
        self.page: Any = None

    async def open(self) -> None:
        """Launch chromium, log in, wait until the list is live, start stamping cards."""
        from playwright.async_api import async_playwright, expect

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=CHROMIUM,
                                                               args=["--no-sandbox"])
        self.page = await self._browser.new_page(viewport={"width": 412, "height": 900})  # a phone
        await self.page.goto(self.base + "/")
        await self.page.fill("#username", USER)
        await self.page.fill("#password", PASSWORD)
        await self.page.click("#login-button")
        await expect(self.page.locator("#alerts-view")).to_be_visible(timeout=15_000)
        await expect(self.page.locator("#conn")).to_contain_text("Live", timeout=15_000)
        await self.page.evaluate(OBSERVER)

    async def appeared(self, alert_id: str, timeout_s: float) -> tuple[float, float] | None:
        """Wall times (s) the alert's card was put in the list and painted; None if it never came."""
        try:
            await self.page.wait_for_function(
                "id => { const s = window.__benchSeen[id]; return s && s.paint !== null; }",
                arg=alert_id, timeout=timeout_s * 1000)
        except Exception as exc:  # playwright's TimeoutError
            if type(exc).__name__ != "TimeoutError":
                raise
            return None
        seen = await self.page.evaluate("id => window.__benchSeen[id]", alert_id)
        return seen["dom"] / 1000, seen["paint"] / 1000

    async def gone(self, alert_id: str, timeout_s: float = 10.0) -> None:
        """Wait until the alert's card has left the list."""
        await self.page.wait_for_function(
            "id => !document.querySelector(`#alerts li[data-alert-id=\"${id}\"]`)",
            arg=alert_id, timeout=timeout_s * 1000)

    async def close(self) -> None:
        """Close the browser."""
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()


class ConsoleApi:
    """The console's JSON API as the same guard: resolves alerts by hand between presses."""

    def __init__(self, port: int) -> None:
        self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self._csrf = ""

    async def login(self) -> None:
        """Log in; keep the session cookie and the CSRF token."""
        response = await self._client.post("/api/login", json={"username": USER, "password": PASSWORD})
        response.raise_for_status()
        self._csrf = response.json()["csrf_token"]

    async def resolve(self, alert_id: str) -> None:
        """Resolve an alert by hand, with a note."""
        response = await self._client.post(f"/api/alerts/{alert_id}/resolve", json={"note": "bench"},
                                           headers={"X-CSRF-Token": self._csrf})
        response.raise_for_status()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
