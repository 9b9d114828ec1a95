"""The uplink outbox in SQLite: class caps, TTL, replay order, delivery, totals, telemetry aggregation."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edge.clock import ManualClock
from edge.events import Reading, SafetyEvent, Severity
from edge.store import DB_FILENAME, Store, outbox, outbox_telemetry
from edge.store.database import Database
from edge.uplink.contract import dumps, occupancy_body

T0 = 1_700_000_000.0


def event(n: int = 0) -> SafetyEvent:
    return SafetyEvent("panic_button", Severity.CRITICAL, T0 + n, "node:n1", "r1", {"n": n})


def occupancy(count: int) -> str:
    return dumps(occupancy_body("r1", count, T0, "cam1", None))


def real_totals(path: Path) -> dict[str, tuple[int, int]]:
    """Rows and bytes per class counted the slow way, to check the running totals against."""
    conn = sqlite3.connect(path / DB_FILENAME)
    try:
        return {c: (n, b) for c, n, b in
                conn.execute("SELECT msg_class, count(*), sum(bytes) FROM outbox GROUP BY msg_class")}
    finally:
        conn.close()


def kept_totals(stats: dict) -> dict[str, tuple[int, int]]:
    return {c: (v["count"], v["bytes"]) for c, v in stats["classes"].items() if v["count"]}


async def test_occupancy_cap_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    store.configure_outbox({"occupancy": (5, 10**9, None)})
    assert await store.outbox_add("occupancy", [occupancy(i) for i in range(3)], T0) == 0
    assert await store.outbox_add("occupancy", [occupancy(i) for i in range(3, 7)], T0 + 1) == 2
    rows = await store.outbox_pending("occupancy", 100)
    assert [json.loads(r.payload)["count"] for r in rows] == [2, 3, 4, 5, 6]
    assert all(r.topic == "occupancy" and r.seq is None for r in rows)
    stats = await store.outbox_stats(T0 + 10)
    assert stats["classes"]["occupancy"]["count"] == 5 and not stats["classes"]["occupancy"]["over_cap"]
    assert stats["dropped"]["occupancy"] == {"full": 2, "expired": 0, "retention": 0}
    assert stats["classes"]["occupancy"]["oldest_age_s"] == 10.0
    await store.close()


async def test_byte_cap_drops_the_oldest_until_the_class_fits(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    body = occupancy(1)
    store.configure_outbox({"telemetry": (1000, 3 * len(body) + 1, None)})
    assert await store.outbox_add("telemetry", [body] * 5, T0) == 2
    stats = await store.outbox_stats(T0)
    assert stats["classes"]["telemetry"]["bytes"] == 3 * len(body)
    assert stats["dropped"]["telemetry"]["full"] == 2
    assert kept_totals(stats) == real_totals(tmp_path)
    await store.close()


async def test_events_over_their_cap_are_kept_and_flagged(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    store.configure_outbox({"event": (2, 10**9, None)})
    seqs = [(await store.add_event(event(i))).seq for i in range(3)]
    stats = await store.outbox_stats()
    assert stats["classes"]["event"]["count"] == 3 and stats["classes"]["event"]["over_cap"]
    assert stats["dropped"]["event"] == {"full": 0, "expired": 0, "retention": 0}
    rows = await store.outbox_pending("event", 10, now=T0 + 10**9)  # events never expire
    assert [r.seq for r in rows] == seqs and [json.loads(r.payload)["seq"] for r in rows] == seqs
    for bad in ("event", "nonsense"):
        try:
            await store.outbox_add(bad, ["{}"], T0)
        except ValueError:
            continue
        raise AssertionError(f"outbox_add accepted class {bad!r}")
    await store.close()


async def test_rows_expire_after_their_ttl(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    store.configure_outbox({"occupancy": (100, 10**9, 10.0)})
    await store.add_event(event())
    await store.outbox_add("occupancy", [occupancy(1)], T0)
    await store.outbox_add("occupancy", [occupancy(2)], T0 + 5)
    live = await store.outbox_pending("occupancy", 10, now=T0 + 12)
    assert [json.loads(r.payload)["count"] for r in live] == [2] and live[0].expires_at == T0 + 15
    assert await store.outbox_expire(T0 + 12) == {"occupancy": 1}
    assert await store.outbox_expire(T0 + 12) == {}
    stats = await store.outbox_stats(T0 + 12)
    assert stats["dropped"]["occupancy"]["expired"] == 1 and stats["classes"]["event"]["count"] == 1
    assert await store.outbox_expire(T0 + 10**9) == {"occupancy": 1}  # the event stays
    assert kept_totals(await store.outbox_stats(T0)) == real_totals(tmp_path) and real_totals(tmp_path)
    await store.close()


async def test_pending_is_in_id_order_and_splits_backlog_from_live(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    for i, created in enumerate([1.0, 2.0, 3.0, 10.0, 11.0]):
        await store.outbox_add("occupancy", [occupancy(i)], T0 + created)
    all_rows = await store.outbox_pending("occupancy", 100)
    ids = [r.id for r in all_rows]
    assert ids == sorted(ids) and len(ids) == 5
    backlog = await store.outbox_pending("occupancy", 100, created_before=T0 + 10)
    live = await store.outbox_pending("occupancy", 100, created_from=T0 + 10)
    assert [r.id for r in backlog] == ids[:3] and [r.id for r in live] == ids[3:]
    assert [r.id for r in await store.outbox_pending("occupancy", 2, after_id=ids[0])] == ids[1:3]
    assert [r.id for r in await store.outbox_pending("occupancy", 9, after_id=ids[3],
                                                      created_from=T0 + 10)] == ids[4:]
    assert await store.outbox_pending("telemetry", 10) == []
    await store.close()


async def test_delivered_rows_go_and_are_counted(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    await store.add_event(event(1))
    await store.add_event(event(2))
    await store.outbox_add("occupancy", [occupancy(i) for i in range(4)], T0)
    ev = await store.outbox_pending("event", 10)
    occ = await store.outbox_pending("occupancy", 10)
    await store.outbox_delivered([ev[0].id, occ[0].id, occ[1].id], T0 + 3)
    await store.outbox_delivered([ev[0].id, 10**9], T0 + 4)  # a repeated PUBACK, an unknown id
    stats = await store.outbox_stats(T0 + 5)
    assert stats["delivered"] == {"event": 1, "occupancy": 2, "telemetry": 0}
    assert stats["last_delivered_at"] == T0 + 4
    assert [r.id for r in await store.outbox_pending("event", 10)] == [ev[1].id]
    assert kept_totals(stats) == real_totals(tmp_path) == {
        "event": (1, len(ev[1].payload.encode())), "occupancy": (2, 2 * len(occ[2].payload.encode()))}
    assert (await store.stats())["events"] == 2  # the events table keeps delivered events
    await store.close()


async def test_totals_stay_exact_through_a_random_mix(tmp_path: Path) -> None:
    rng = random.Random(6)
    store = await Store.open(tmp_path, ManualClock(T0))
    store.configure_outbox({"occupancy": (30, 10**9, 50.0), "telemetry": (100, 4000, 20.0)})
    t = T0
    for step in range(300):
        t += rng.random() * 3
        op = rng.randrange(5)
        if op == 0:
            await store.add_event(event(step))
        elif op in (1, 2):
            cls = "occupancy" if op == 1 else "telemetry"
            await store.outbox_add(cls, ["x" * rng.randrange(1, 200) for _ in range(rng.randrange(1, 20))], t)
        elif op == 3:
            cls = rng.choice(["event", "occupancy", "telemetry"])
            rows = await store.outbox_pending(cls, rng.randrange(1, 15))
            await store.outbox_delivered([r.id for r in rows], t)
        else:
            await store.outbox_expire(t)
        assert kept_totals(await store.outbox_stats(t)) == real_totals(tmp_path), step
    stats = await store.outbox_stats(t)
    assert stats["dropped"]["telemetry"]["full"] > 0 and stats["dropped"]["occupancy"]["expired"] > 0
    await store.close()


def test_migration_starts_the_totals_from_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    old = Database(path, target_version=5)
    for i in range(3):
        old.add_event(event(i), T0 + i)
    # Rows the previous release could hold: occupancy, one of them marked delivered; no totals.
    old.db.conn.executemany(
        "INSERT INTO outbox (msg_class, topic, payload, bytes, created_at, delivered_at) "
        "VALUES ('occupancy', 'occupancy', ?, ?, ?, ?)",
        [("abc", 3, T0, None), ("defgh", 5, T0 + 1, None), ("old", 3, T0, T0 + 2)])
    old.db.execute("DELETE FROM counters WHERE name LIKE 'outbox.%'")
    old.db.conn.commit()
    old.close()

    db = Database(path)
    stats = db.outbox_stats(T0 + 10)
    totals = real_totals(tmp_path)
    assert kept_totals(stats) == totals and totals["occupancy"] == (2, 8) and totals["event"][0] == 3
    assert stats["classes"]["occupancy"]["oldest_age_s"] == 10.0
    db.add_event(event(9), T0 + 9)
    db.outbox_delivered([r.id for r in db.outbox_pending("occupancy", 1)], T0 + 11)
    assert kept_totals(db.outbox_stats(T0)) == real_totals(tmp_path)
    db.close()


def test_stats_and_expiry_read_indexes_not_the_table(tmp_path: Path) -> None:
    db = Database(tmp_path / DB_FILENAME)
    plans = {
        "oldest": "SELECT min(created_at) FROM outbox INDEXED BY outbox_class_created WHERE msg_class = 'x'",
        "expire": "SELECT id FROM outbox INDEXED BY outbox_expires WHERE expires_at <= 5 LIMIT 10",
    }
    for name, sql in plans.items():
        detail = " ".join(r[3] for r in db.db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SEARCH" in detail and "INDEX" in detail, (name, detail)
    db.close()


async def add_readings(store: Store, rows: list[tuple[float, str, str, float, str | None]]) -> None:
    await store.add_readings([Reading(dev, metric, value, "ppm" if metric == "co2" else "C", ts, room)
                              for ts, dev, metric, value, room in rows])


def telemetry_messages(path: Path) -> list[dict]:
    conn = sqlite3.connect(path / DB_FILENAME)
    try:
        return [json.loads(p) for (p,) in
                conn.execute("SELECT payload FROM outbox WHERE msg_class = 'telemetry' ORDER BY id")]
    finally:
        conn.close()


def watermark(path: Path) -> float | None:
    conn = sqlite3.connect(path / DB_FILENAME)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'telemetry_until'").fetchone()
        return None if row is None else float(row[0])
    finally:
        conn.close()


async def test_telemetry_aggregates_each_complete_interval_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    await add_readings(store, [(30.0, "d1", "co2", 999.0, "r1")])  # old history: never backfilled
    assert await store.telemetry_aggregate(60.0, 65.0) == 0
    assert watermark(tmp_path) == 60.0
    await add_readings(store, [(61.0, "d1", "co2", 400.0, "r1"), (70.0, "d1", "co2", 500.0, "r1"),
                               (119.5, "d1", "co2", 450.0, "r2"), (80.0, "d1", "temp", 21.5, "r1"),
                               (100.0, "d2", "co2", 600.0, None), (125.0, "d1", "co2", 700.0, "r1")])
    assert await store.telemetry_aggregate(60.0, 170.0, {"d2": "r9"}) == 2
    assert await store.telemetry_aggregate(60.0, 170.0) == 0  # called again: nothing twice
    d1, d2 = telemetry_messages(tmp_path)
    assert (d1["device_id"], d1["interval_start"], d1["interval_end"]) == ("d1", 60.0, 120.0)
    assert d1["metrics"] == {
        "co2": {"min": 400.0, "avg": 450.0, "max": 500.0, "last": 450.0, "count": 3, "unit": "ppm"},
        "temp": {"min": 21.5, "avg": 21.5, "max": 21.5, "last": 21.5, "count": 1, "unit": "C"}}
    assert d1["room_id"] == "r2"  # the room of the device's latest reading
    assert d2["device_id"] == "d2" and d2["room_id"] == "r9" and d2["metrics"]["co2"]["count"] == 1
    assert d1["schema"] == "campus/v1/telemetry" and d1["message_id"] != d2["message_id"]
    rows = await store.outbox_pending("telemetry", 10, now=200.0)
    assert [r.created_at for r in rows] == [120.0, 120.0] and all(r.topic == "telemetry" for r in rows)
    assert await store.telemetry_aggregate(60.0, 180.0) == 1
    assert telemetry_messages(tmp_path)[-1]["metrics"]["co2"]["last"] == 700.0
    assert watermark(tmp_path) == 180.0
    await store.close()


async def test_telemetry_catches_up_in_bounded_steps_and_skips_empty_time(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock(T0))
    assert await store.telemetry_aggregate(1.0, 0.0) == 0
    await add_readings(store, [(float(s) + 0.5, "d1", "co2", float(s), None) for s in range(2500)])
    await add_readings(store, [(10**6 + s + 0.5, "d1", "co2", 1.0, None) for s in range(3)])
    counts = [await store.telemetry_aggregate(1.0, 10**6 + 10.0) for _ in range(5)]
    assert counts == [1000, 1000, 500, 3, 0]  # the year-long silence costs one step, not a million
    starts = [m["interval_start"] for m in telemetry_messages(tmp_path)]
    assert starts == [float(s) for s in range(2500)] + [10**6 + float(s) for s in range(3)]
    assert watermark(tmp_path) == 10**6 + 10.0
    await store.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from edge.events import Reading, SafetyEvent, Severity
    from edge.store import Store

    async def main():
        store = await Store.open(Path(sys.argv[1]))
        store.configure_outbox({"occupancy": (40, 10**9, 30.0), "telemetry": (10**6, 10**9, None)})
        t0, i = float(sys.argv[2]), 0
        while True:
            i += 1
            now = (time.time() - t0) * 100  # 100x: a 1 s interval closes every 10 ms
            await store.add_readings([Reading(f"d{d}", m, float(i), "u", now, "r1")
                                      for d in range(3) for m in ("co2", "temp")])
            await store.telemetry_aggregate(1.0, now)
            await store.outbox_add("occupancy", ["x" * (i % 50 + 1)] * 7, now)
            if i % 4 == 0:
                await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, now, "t"))
                rows = await store.outbox_pending("occupancy", 9) + await store.outbox_pending("event", 2)
                await store.outbox_delivered([r.id for r in rows], now)
                await store.outbox_expire(now)
            print(i, flush=True)

    asyncio.run(main())
    """
)


def test_kill_9_keeps_totals_and_the_telemetry_watermark_exact(tmp_path: Path) -> None:
    rng = random.Random(9)
    t0 = time.time()
    for _round in range(10):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), repr(t0)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for _ in range(rng.randrange(5, 60)):
            assert proc.stdout.readline(), "the writer died on its own"
        time.sleep(rng.random() * 0.02)  # land somewhere inside the next iteration
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()

    db = Database(tmp_path / DB_FILENAME)
    assert db.integrity_check() == "ok"
    assert kept_totals(db.outbox_stats(time.time())) == real_totals(tmp_path)
    db.close()
    messages = telemetry_messages(tmp_path)
    mark = watermark(tmp_path)
    assert mark is not None and len(messages) > 100
    sent = {}
    for m in messages:
        key = (m["device_id"], m["interval_start"])
        assert key not in sent, f"interval aggregated twice: {key}"
        sent[key] = {metric: v["count"] for metric, v in m["metrics"].items()}
    first = min(start for _dev, start in sent)
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    expected: dict = {}
    for dev, k, metric, n in conn.execute(
            "SELECT device_id, CAST(ts AS INTEGER) AS k, metric, count(*) FROM readings "
            "WHERE ts >= ? AND ts < ? GROUP BY device_id, k, metric", [first, mark]):
        expected.setdefault((dev, float(k)), {})[metric] = n
    conn.close()
    assert sent == expected  # every interval up to the watermark, none missing, none twice


def test_telemetry_catch_up_is_bounded_by_readings_too(tmp_path: Path) -> None:
    db = Database(tmp_path / DB_FILENAME)
    db.telemetry_aggregate(10.0, 0.0)
    db.add_readings([Reading("d1", "co2", 1.0, "ppm", s / 4, None) for s in range(400)])  # 40 per interval
    calls = []
    while True:
        with db.db.atomic():
            n = outbox_telemetry.aggregate(db.db.conn, 10.0, 1000.0, None, outbox.DEFAULT_LIMITS,
                                           max_readings=100)
        if n == 0:
            break
        calls.append(n)
    assert calls == [2, 2, 2, 2, 2]  # 100 readings' worth, whole intervals only
    counts = [m["metrics"]["co2"]["count"] for m in telemetry_messages(tmp_path)]
    assert counts == [40] * 10
    db.close()
