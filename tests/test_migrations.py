"""Upgrades from every earlier schema version: data intact, chain valid, counters right, seq continues."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.clock import ManualClock
from edge.errors import SchemaTooNew
from edge.events import SafetyEvent, Severity
from edge.store import DB_FILENAME, LATEST_VERSION, Store
from edge.store.database import GENESIS_HASH, _audit_hash

DAY = 86400.0
T0 = 1_700_000_000.0


def fill_as_release(conn: sqlite3.Connection, version: int) -> None:
    """Write rows the way the release with schema `version` did (raw SQL: today's code may differ)."""
    conn.executemany("INSERT INTO readings (ts, device_id, metric, value, unit, room_id) "
                     "VALUES (?,?,?,?,?,?)", [(T0 + i, "d1", "co2", 400.0 + i, "ppm", "r1")
                                              for i in range(3)])
    events = [(1, "e-1", "smoke_alarm", "critical", "r1", "node:n1", T0, T0 + 1, '{"zone":2}'),
              (2, "e-2", "alert", "critical", "r1", "alerts", T0, T0 + 2,
               '{"action":"raised","alert_id":"a-1","state":"raised"}'),
              (3, "e-3", "door_forced", "critical", None, "node:n2", T0, T0 + 3, "{}")]
    conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", events)
    conn.execute("UPDATE counters SET value = 3 WHERE name = 'event_seq'")
    if version >= 2:
        for seq, *_rest, data in events:
            payload = json.dumps({"seq": seq, "data": json.loads(data)})
            # Releases 2-5 marked a delivered row; release 6 deleted it instead.
            if seq == 1 and version >= 6:
                continue
            conn.execute("INSERT INTO outbox (msg_class, seq, topic, payload, bytes, created_at, "
                         "delivered_at) VALUES ('event', ?, 'event', ?, ?, ?, ?)",
                         [seq, payload, len(payload), T0 + seq, T0 + 9 if seq == 1 else None])
        prev = GENESIS_HASH
        for i in range(3):
            ts, detail = T0 + i, json.dumps({"role": "security"})
            digest = _audit_hash(prev, ts, "ada", "user.add", f"guard{i}", detail)
            conn.execute("INSERT INTO audit (ts, actor, action, target, detail, prev_hash, hash) "
                         "VALUES (?,?,?,?,?,?,?)", [ts, "ada", "user.add", f"guard{i}", detail, prev, digest])
            prev = digest
    if version >= 3:
        conn.execute("INSERT INTO commands VALUES ('c-1','d1','on','{}','ada',?, 'ok','{}',?)", [T0, T0 + 1])
        conn.execute("INSERT INTO commands (command_id, device_id, action, args, actor, received_at, status) "
                     "VALUES ('c-2','d1','off','{}','ada',?, 'running')", [T0])
    if version >= 4:
        conn.execute("INSERT INTO users VALUES ('ada', 'admin', '$argon2id$fake', ?, ?, 0)", [T0, T0])
    if version >= 6:
        payload = '{"count":3}'
        conn.execute("INSERT INTO outbox (msg_class, topic, payload, bytes, created_at, expires_at) "
                     "VALUES ('occupancy', 'occupancy', ?, ?, ?, ?)", [payload, len(payload), T0, T0 + DAY])
        # Release 6 kept its totals in counters, in the same transaction as the rows.
        conn.execute("INSERT INTO counters SELECT 'outbox.rows.' || msg_class, count(*) FROM outbox "
                     "GROUP BY msg_class")
        conn.execute("INSERT INTO counters SELECT 'outbox.bytes.' || msg_class, sum(bytes) FROM outbox "
                     "GROUP BY msg_class")


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
           for t in ("readings", "events", "audit", "commands", "users") if t in tables}
    conn.close()
    return out


def schema_of(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    rows = {(r[0], r[1]) for r in conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    conn.close()
    return rows


@pytest.mark.parametrize("version", range(1, LATEST_VERSION))
async def test_every_earlier_version_upgrades_with_its_data(tmp_path: Path, version: int) -> None:
    old_dir, fresh_dir = tmp_path / "old", tmp_path / "fresh"
    old_dir.mkdir()
    fresh_dir.mkdir()
    old = await Store.open(old_dir, target_version=version)
    assert await old.schema_version() == version
    await old.close()
    conn = sqlite3.connect(old_dir / DB_FILENAME)
    fill_as_release(conn, version)
    conn.commit()
    conn.close()
    before = snapshot(old_dir / DB_FILENAME)

    clock = ManualClock(start=T0 + 400 * DAY)
    store = await Store.open(old_dir, clock)
    assert await store.schema_version() == LATEST_VERSION
    after = snapshot(old_dir / DB_FILENAME)
    for table, rows in before.items():
        assert after[table] == rows, table
    assert await store.verify_audit() is None
    # Outbox totals agree with the rows: the delivered row an old release kept is gone.
    conn = sqlite3.connect(old_dir / DB_FILENAME)
    real = {cls: (n, b) for cls, n, b in conn.execute(
        "SELECT msg_class, count(*), sum(bytes) FROM outbox GROUP BY msg_class")}
    counted = dict(conn.execute("SELECT name, value FROM counters WHERE name LIKE 'outbox.%'").fetchall())
    conn.close()
    assert {c: (counted.get(f"outbox.rows.{c}"), counted.get(f"outbox.bytes.{c}")) for c in real} == real
    assert (await store.stats())["outbox_pending"] == sum(n for n, _ in real.values())
    if version >= 2:
        assert [r.seq for r in await store.outbox_pending("event", 100)] == [2, 3]

    envelope = await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, T0, "node:n1", "r1"))
    assert envelope.seq == 4
    assert [t["action"] for t in await store.alert_history("a-1")] == ["raised"]
    await store.append_audit("system", "gateway.start", "gw")
    # Audit retention works on an upgraded chain too, and the chain verifies from its new anchor.
    assert await store.prune("audit", clock.now() - 180 * DAY) == (3 if version >= 2 else 0)
    assert await store.verify_audit() is None
    if version >= 4:
        user = await store.get_user("ada")
        assert user is not None and user.password_hash == "$argon2id$fake"
    await store.close()

    fresh = await Store.open(fresh_dir)
    await fresh.close()
    # Same tables, indexes and triggers as a database created by this release.
    assert schema_of(old_dir / DB_FILENAME) == schema_of(fresh_dir / DB_FILENAME)


async def test_a_database_from_a_newer_release_is_refused_and_left_alone(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, T0, "node:n1", "r1"))
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("INSERT INTO schema_version (version, description) VALUES (?, 'from the future')",
                 [LATEST_VERSION + 1])
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew, match=rf"version {LATEST_VERSION + 1} is newer than this release "
                                           rf"supports \({LATEST_VERSION}\)"):
        await Store.open(tmp_path)
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == LATEST_VERSION + 1
    conn.close()
