"""The console JSON API: sessions, CSRF, roles, alerts, snapshots and the audit trail."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi.routing import APIRoute

from edge.users import Role, hash_password
from tests.console.harness import (
    FAST,
    PASSWORD,
    login,
    logout,
    running_console,
    tiny_jpeg_image,
)

OPEN_PATHS = {"/api/setup", "/api/login", "/api/health", "/metrics"}  # /metrics: loopback by default


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI >= 0.16x keeps those lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


async def test_health_needs_no_session(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        response = await client.get("/api/health")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_every_protected_route_answers_401_without_a_session(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        routes = [r for r in api_routes(console.app.routes) if r.path not in OPEN_PATHS]
        assert {r.path for r in routes} >= {"/api/me", "/api/logout", "/api/alerts", "/api/stream",
                                            "/api/alerts/{alert_id}/ack", "/api/snapshots/{snapshot_id}"}
        for route in routes:
            path = re.sub(r"\{[^}]+\}", "x" * 32, route.path)
            for method in route.methods or ():
                response = await client.request(method, path, headers={"X-CSRF-Token": "x"})
                assert response.status_code == 401, (method, route.path, response.text)
        client.cookies.set("edge_session", "forged-token")
        assert (await client.get("/api/me")).status_code == 401


async def test_login_sets_a_strict_httponly_cookie_and_me_answers(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        response = await client.post("/api/login", json={"username": "sam", "password": PASSWORD})
        assert response.status_code == 200
        body = response.json()
        assert body["username"] == "sam" and body["role"] == "security" and len(body["csrf_token"]) >= 40
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("edge_session=")
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert "secure" not in cookie.lower()
        token = cookie.split(";")[0].split("=", 1)[1]
        assert len(token) >= 43  # 32 random bytes, base64url
        me = (await client.get("/api/me")).json()
        assert me == {"username": "sam", "role": "security", "csrf_token": body["csrf_token"]}


async def test_secure_cookies_mark_the_cookie_secure(tmp_path: Path) -> None:
    async with running_console(tmp_path, secure_cookies=True) as console, console.client() as client:
        response = await client.post("/api/login", json={"username": "sam", "password": PASSWORD})
        assert "; secure" in response.headers["set-cookie"].lower()


async def test_wrong_password_is_refused_and_audited_without_the_password(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        response = await client.post("/api/login", json={"username": "sam", "password": "not the one!"})
        assert response.status_code == 401 and "set-cookie" not in response.headers
        response = await client.post("/api/login", json={"username": "nobody", "password": "not the one!"})
        assert response.status_code == 401
        await login(client, "sam")
        rows = [r for r in console.audit() if r["action"].startswith("console.")]
        assert [(r["action"], r["target"]) for r in rows] == [
            ("console.login_failed", "sam"), ("console.login_failed", "nobody"), ("console.login", "sam")]
        assert rows[-1]["actor"] == "sam"
        dump = json.dumps(console.audit())
        assert "not the one" not in dump and PASSWORD not in dump


async def test_brute_force_is_throttled_with_retry_after(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        for _ in range(3):
            response = await client.post("/api/login", json={"username": "sam", "password": "guess guess 1"})
            assert response.status_code == 401
        response = await client.post("/api/login", json={"username": "sam", "password": PASSWORD})
        assert response.status_code == 429  # even the right password waits out the lockout
        assert int(response.headers["retry-after"]) >= 1
        console.clock.advance(31)
        await login(client, "sam")


async def test_login_rehashes_an_outdated_hash(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        old = PasswordHasher(time_cost=2, memory_cost=8, parallelism=1)
        await console.store.add_user("rita", Role.VIEWER, hash_password(PASSWORD, old), "test")
        await login(client, "rita")
        stored = await console.store.get_user("rita")
        assert stored is not None and not FAST.check_needs_rehash(stored.password_hash)
        assert ("user.rehash", "rita") in [(r["action"], r["target"]) for r in console.audit()]
        await logout(client)
        await login(client, "rita")  # the new hash verifies


async def test_ack_and_resolve_happy_path_is_audited(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        csrf = await login(client, "sam")
        listed = (await client.get("/api/alerts")).json()
        assert [a["kind"] for a in listed] == ["panic"] and listed[0]["state"] == "raised"
        alert_id = listed[0]["alert_id"]
        assert (await client.get(f"/api/alerts/{alert_id}")).json()["severity"] == "critical"
        headers = {"X-CSRF-Token": csrf}
        response = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "on my way"},
                                     headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "acknowledged" and response.json()["acknowledged_by"] == "sam"
        again = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": ""}, headers=headers)
        assert again.status_code == 409 and "already acknowledged by sam" in again.json()["detail"]
        response = await client.post(f"/api/alerts/{alert_id}/resolve", json={"note": "false alarm"},
                                     headers=headers)
        assert response.status_code == 200 and response.json()["state"] == "resolved"
        assert (await client.get("/api/alerts")).json() == []
        late = await client.post(f"/api/alerts/{alert_id}/resolve", headers=headers)
        assert late.status_code == 409
        unknown = await client.post("/api/alerts/no-such-id/ack", json={"note": ""}, headers=headers)
        assert unknown.status_code == 404
        assert (await client.get("/api/alerts/no-such-id")).status_code == 404
        rows = [(r["actor"], r["action"], r["target"], json.loads(r["detail"])) for r in console.audit()
                if r["action"].startswith("alert.")]
        assert rows == [("sam", "alert.ack", alert_id, {"note": "on my way"}),
                        ("sam", "alert.resolve", alert_id, {"note": "false alarm"})]


async def test_a_viewer_cannot_acknowledge(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        csrf = await login(client, "vera")
        assert (await client.get("/api/alerts")).status_code == 200
        response = await client.post(f"/api/alerts/{console.open_alert_id()}/ack", json={"note": "x"},
                                     headers={"X-CSRF-Token": csrf})
        assert response.status_code == 403
        assert console.alerts.book.open_alerts()[0].state == "raised"


async def test_changes_without_the_csrf_header_are_refused(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        await login(client, "ada")
        alert_id = console.open_alert_id()
        for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "wrong"}):
            response = await client.post(f"/api/alerts/{alert_id}/ack", json={"note": "x"}, headers=headers)
            assert response.status_code == 403, headers
        assert (await client.post("/api/logout")).status_code == 403
        assert console.alerts.book.open_alerts()[0].state == "raised"


async def test_logout_idle_expiry_and_removed_users_end_sessions(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        csrf = await login(client, "olga")
        response = await client.post("/api/logout", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 200 and (await client.get("/api/me")).status_code == 401
        await login(client, "olga")
        console.clock.advance(11 * 3600)
        assert (await client.get("/api/me")).status_code == 200  # activity renews the idle timer
        console.clock.advance(12 * 3600)
        assert (await client.get("/api/me")).status_code == 401
        await login(client, "vera")
        await console.store.remove_user("vera", "test")
        assert (await client.get("/api/me")).status_code == 401


async def test_snapshots_only_by_opaque_id(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        snap = console.snapshots.save(tiny_jpeg_image(), "cam1", "panic")
        (tmp_path / "x").write_text("secret")
        await login(client, "vera")
        assert (await client.get(f"/api/snapshots/{snap.snapshot_id}")).status_code == 403
        await logout(client)
        await login(client, "sam")
        response = await client.get(f"/api/snapshots/{snap.snapshot_id}")
        assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "no-store"
        for bad in ("../x", "..%2fx", "%2e%2e%2fx", "%2e%2e%2f%2e%2e%2fx", "..%5cx", "/etc/passwd",
                    "%2fetc%2fpasswd", f"{snap.snapshot_id}%00", "%00", "0" * 32,
                    f"{snap.snapshot_id}.json", f"{snap.snapshot_id}.jpg", snap.snapshot_id.upper()):
            response = await client.get(f"/api/snapshots/{bad}")
            assert response.status_code == 404, bad
            assert b"secret" not in response.content and not response.content.startswith(b"\xff\xd8")
            assert b"root:" not in response.content


async def test_an_oversized_body_is_refused_with_413_before_any_route_reads_it(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        big = b'{"username": "' + b"a" * (70 * 1024) + b'", "password": "x"}'
        response = await client.post("/api/login", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.headers["x-content-type-options"] == "nosniff"

        async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it streams
            for _ in range(20):
                yield b" " * 8192

        response = await client.post("/api/login", content=chunks(),
                                     headers={"content-type": "application/json"})
        assert response.status_code == 413
        # a normal-sized body still gets through to the route
        response = await client.post("/api/login", json={"username": "sam", "password": "wrong password"})
        assert response.status_code == 401
        assert [r["action"] for r in console.audit()].count("console.login_failed") == 1


async def test_the_uplink_status_says_whether_the_platform_is_reachable_and_what_waits(
        tmp_path: Path) -> None:
    from edge.uplink.metrics import UplinkMetrics

    backlog = {"classes": {"event": {"count": 3}, "telemetry": {"count": 4}}}
    metrics = UplinkMetrics(connected=True, outbox=backlog)
    metrics.record_delivery("event", 5, historical=True, now=1234.5)
    async with running_console(tmp_path, uplink=metrics) as console, console.client() as client:
        await login(client, "vera")
        body = (await client.get("/api/uplink")).json()
    assert body["configured"] and body["connected"] and body["backlog"] == 7
    assert body["delivered"] == {"event": 5} and body["replayed"] == 5 and body["last_puback_at"] == 1234.5
    (tmp_path / "none").mkdir()
    async with running_console(tmp_path / "none") as console, console.client() as client:
        await login(client, "vera")
        assert (await client.get("/api/uplink")).json() == {"configured": False}
