"""Console audit routes: admins only, newest-first pages, and the hash-chain check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.store import DB_FILENAME
from tests.console.harness import login, running_console


async def test_audit_is_for_admins_only(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console:
        async with console.client() as client:
            assert (await client.get("/api/audit")).status_code == 401
            assert (await client.get("/api/audit/verify")).status_code == 401
        for name in ("vera", "sam", "olga"):
            async with console.client() as client:
                await login(client, name)
                assert (await client.get("/api/audit")).status_code == 403
                assert (await client.get("/api/audit/verify")).status_code == 403
        async with console.client() as client:
            await login(client, "ada")
            assert (await client.get("/api/audit")).status_code == 200


async def test_audit_pages_newest_first_until_the_oldest(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        for i in range(7):
            await console.store.append_audit("tester", "test.step", f"t{i}", {"i": i, "why": ["x"]})
        await login(client, "ada")
        total = len(console.audit())
        first = (await client.get("/api/audit", params={"limit": 3})).json()
        newest = first["entries"][0]
        assert newest["actor"] == "ada" and newest["action"] == "console.login"
        assert set(newest) == {"id", "ts", "actor", "action", "target", "detail"}
        step = first["entries"][1]
        assert step["target"] == "t6" and step["detail"] == {"i": 6, "why": ["x"]}
        seen = [e["id"] for e in first["entries"]]
        cursor = first["next_before_id"]
        assert cursor == seen[-1]
        while cursor is not None:
            page = (await client.get("/api/audit", params={"limit": 3, "before_id": cursor})).json()
            seen += [e["id"] for e in page["entries"]]
            cursor = page["next_before_id"]
        assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == total
        everything = (await client.get("/api/audit", params={"limit": 500})).json()
        assert [e["id"] for e in everything["entries"]] == seen and everything["next_before_id"] is None
        default = (await client.get("/api/audit")).json()
        assert len(default["entries"]) == total  # fewer than the default limit of 100


async def test_audit_query_bounds_are_422(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        await login(client, "ada")
        for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"before_id": 0},
                       {"before_id": 2**64}, {"before_id": "1.5"}):
            response = await client.get("/api/audit", params=params)
            assert response.status_code == 422, (params, response.text)
        assert (await client.get("/api/audit", params={"before_id": 1})).json() == {
            "entries": [], "next_before_id": None}


async def test_verify_reports_the_chain_and_finds_a_tampered_record(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.client() as client:
        await login(client, "ada")
        report = (await client.get("/api/audit/verify")).json()
        assert report == {"ok": True, "records": len(console.audit()), "broken_at": None}
        assert report["records"] >= 5  # four users added and one login
        # Rewrite history behind the store's back (the append-only triggers dropped first).
        db = sqlite3.connect(tmp_path / DB_FILENAME)
        try:
            victim = db.execute("SELECT id FROM audit WHERE action = 'user.add' ORDER BY id LIMIT 1 OFFSET 1")
            (victim_id,) = victim.fetchone()
            db.execute("DROP TRIGGER audit_no_update")
            db.execute("UPDATE audit SET actor = 'nobody' WHERE id = ?", [victim_id])
            db.commit()
        finally:
            db.close()
        report = (await client.get("/api/audit/verify")).json()
        assert report["ok"] is False and report["broken_at"] == victim_id
