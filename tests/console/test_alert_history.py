"""Alert detail from the store: one alert's history, pages of stored alerts, alerts the book forgot."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from edge.events import Envelope, SafetyEvent, Severity
from tests.console.harness import Console, login, running_console

HISTORY_KEYS = {"seq", "action", "actor", "note", "ts", "state"}


async def raise_panics(console: Console, count: int) -> None:
    """count more panic alerts, one per button, as stored presses would raise them."""
    before = len(console.alerts.book.open_alerts())
    now = time.time()
    for n in range(count):
        press = SafetyEvent("panic_button", Severity.CRITICAL, now, f"device:b{n}", "r2",
                            {"device_id": f"b{n}"})
        console.bus.publish(Envelope(press, 1000 + n, now))
    async with asyncio.timeout(10):
        while len(console.alerts.book.open_alerts()) < before + count:
            await asyncio.sleep(0.02)


async def test_history_of_an_alert_acknowledged_and_resolved(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as sam, console.client() as vera:
        alert_id = console.open_alert_id()
        csrf = await login(sam, "sam")
        await login(vera, "vera")
        (only,) = (await vera.get(f"/api/alerts/{alert_id}/history")).json()
        assert set(only) == HISTORY_KEYS and (only["action"], only["actor"], only["state"]) == \
            ("raised", "rules", "raised")
        for action, note in (("ack", "on my way"), ("resolve", "pressed by mistake")):
            response = await sam.post(f"/api/alerts/{alert_id}/{action}", json={"note": note},
                                      headers={"X-CSRF-Token": csrf})
            assert response.status_code == 200, response.text
        response = await vera.get(f"/api/alerts/{alert_id}/history")
        assert response.status_code == 200
        history = response.json()
        assert [(h["action"], h["actor"], h["note"], h["state"]) for h in history] == [
            ("raised", "rules", "", "raised"),
            ("acknowledged", "sam", "on my way", "acknowledged"),
            ("resolved", "sam", "pressed by mistake", "resolved")]
        assert all(set(h) == HISTORY_KEYS for h in history)
        assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)
        assert history[0]["ts"] <= history[1]["ts"] <= history[2]["ts"]


async def test_stored_alerts_page_by_seq_with_a_state_filter(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as vera:
        await raise_panics(console, 249)  # with the harness' panic: 250
        ids = [a.alert_id for a in console.alerts.book.open_alerts()]
        for n, alert_id in enumerate(ids):
            if n % 4 == 0:
                await console.alerts.resolve(alert_id, "sam", "")
            elif n % 4 == 1:
                await console.alerts.acknowledge(alert_id, "sam", "")
        await login(vera, "vera")
        # Route order: "history" is not taken for an alert id.
        first = (await vera.get("/api/alerts/history")).json()
        assert len(first["alerts"]) == 50 and isinstance(first["next_before_seq"], int)
        for state, expected in (("resolved", 63), ("acknowledged", 63), ("raised", 124), (None, 250)):
            seen: list[dict[str, object]] = []
            params: dict[str, str | int] = {"limit": 60, **({"state": state} if state else {})}
            while True:
                response = await vera.get("/api/alerts/history", params=params)
                assert response.status_code == 200, response.text
                page = response.json()
                seen += page["alerts"]
                if page["next_before_seq"] is None:
                    break
                assert len(page["alerts"]) == 60
                params["before_seq"] = page["next_before_seq"]
            assert len(seen) == expected == len({a["alert_id"] for a in seen})
            assert state is None or {a["state"] for a in seen} == {state}
            assert [a["updated_at"] for a in seen] == sorted((a["updated_at"] for a in seen), reverse=True)
            for alert in seen:  # rebuilt from the store, exactly what the book says
                assert alert == (await vera.get(f"/api/alerts/{alert['alert_id']}")).json()
        assert (await vera.get("/api/alerts/history", params={"limit": 1, "before_seq": 1})).json() == \
            {"alerts": [], "next_before_seq": None}


async def test_a_forgotten_alert_is_still_served_from_the_store(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as vera:
        alert_id = console.open_alert_id()
        await console.alerts.acknowledge(alert_id, "sam", "looking")
        await console.alerts.resolve(alert_id, "olga", "done")
        await login(vera, "vera")
        remembered = (await vera.get(f"/api/alerts/{alert_id}")).json()
        console.alerts.book.forget_resolved(keep=0)
        assert console.alerts.book.get(alert_id) is None
        response = await vera.get(f"/api/alerts/{alert_id}")
        assert response.status_code == 200
        assert response.json() == remembered
        assert (remembered["state"], remembered["acknowledged_by"], remembered["resolved_by"]) == \
            ("resolved", "sam", "olga")
        (listed,) = (await vera.get("/api/alerts/history", params={"state": "resolved"})).json()["alerts"]
        assert listed == remembered


async def test_junk_ids_and_bad_paging_are_refused(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as vera:
        await login(vera, "vera")
        unknown = "0e5b2a3c-8a1d-4a4e-9d55-3f1c2b7a9e10"
        for alert_id in (unknown, "x" * 65, "..%2F..%2Fetc%2Fpasswd", "a%00b", "%20", "a.b", "-x", "%C3%A9"):
            for path in (f"/api/alerts/{alert_id}", f"/api/alerts/{alert_id}/history"):
                response = await vera.get(path)
                assert response.status_code == 404, (path, response.status_code, response.text)
        for params in ({"limit": 0}, {"limit": 201}, {"limit": "many"}, {"state": "lost"},
                       {"before_seq": 0}, {"before_seq": 2**63}, {"before_seq": "x"}):
            response = await vera.get("/api/alerts/history", params=params)
            assert response.status_code == 422, (params, response.text)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console.app),
                                     base_url="http://testserver") as anonymous:
            assert (await anonymous.get("/api/alerts/history")).status_code == 401
            assert (await anonymous.get(f"/api/alerts/{console.open_alert_id()}/history")).status_code == 401
