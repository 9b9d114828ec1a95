"""Stored alert history: one alert's transitions, pages of alerts by their latest state, and the index."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from edge.alerts.lifecycle import AlertBook, AlertState, Transition
from edge.alerts.service import alert_event
from edge.alerts.signals import AlertSignal
from edge.clock import ManualClock
from edge.events import SafetyEvent, Severity
from edge.store import DB_FILENAME, Store
from edge.store.alert_queries import HISTORY_SQL, PAGE_SQL


def panic(n: int) -> AlertSignal:
    return AlertSignal(f"panic:r1:n{n}", "panic", True, Severity.CRITICAL, "r1", f"PANIC {n}", 0.0,
                       {"device_id": f"n{n}"})


class Recorder:
    """An alert book whose every transition is stored, as the alerts service does."""

    def __init__(self, store: Store) -> None:
        ids = (f"00000000-0000-4000-8000-{i:012d}" for i in itertools.count(1))
        self.book = AlertBook(new_id=lambda: next(ids))
        self.store = store

    async def store_all(self, transitions: list[Transition]) -> None:
        for transition in transitions:
            alert = self.book.get(transition.alert_id)
            assert alert is not None
            await self.store.add_event(alert_event(alert, transition))


async def test_history_of_one_alert_after_raise_ack_and_resolve(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock())
    try:
        rec = Recorder(store)
        (raised,) = rec.book.signal(panic(1), 100.0)
        await rec.store_all([raised])
        await rec.store_all(rec.book.signal(panic(2), 101.0))  # another alert in between
        await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, 101.5, "device:n1", "r1",
                                          {"alert_id": raised.alert_id}))  # not an alert row
        await rec.store_all([rec.book.acknowledge(raised.alert_id, "sam", "on my way", 102.0)])
        await rec.store_all([rec.book.resolve(raised.alert_id, "sam", "false alarm", 103.0)])
        history = await store.alert_history(raised.alert_id)
        assert [(r["action"], r["actor"], r["note"], r["ts"], r["state"]) for r in history] == [
            ("raised", "rules", "", 100.0, "raised"),
            ("acknowledged", "sam", "on my way", 102.0, "acknowledged"),
            ("resolved", "sam", "false alarm", 103.0, "resolved")]
        assert [r["seq"] for r in history] == sorted(r["seq"] for r in history)
        assert history[0]["severity"] == "critical" and history[0]["room_id"] == "r1"
        assert history[0]["data"]["key"] == "panic:r1:n1"
        assert history[2]["data"]["alert_id"] == raised.alert_id
        assert await store.alert_history("00000000-0000-4000-8000-999999999999") == []
    finally:
        await store.close()


async def test_paging_250_alerts_by_their_latest_state(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock())
    try:
        rec = Recorder(store)
        ids = []
        for n in range(250):
            (raised,) = rec.book.signal(panic(n), 1000.0 + n)
            await rec.store_all([raised])
            ids.append(raised.alert_id)
        # Later transitions of older alerts come after newer raises: order is by latest seq.
        for n in range(0, 250, 3):
            await rec.store_all([rec.book.acknowledge(ids[n], "sam", "", 2000.0 + n)])
        for n in range(0, 250, 5):
            await rec.store_all([rec.book.resolve(ids[n], "olga", "", 3000.0 + n)])
        for state in (None, "raised", "acknowledged", "resolved"):
            got, before, pages = [], None, 0
            while True:
                page = await store.alert_page(40, before, state)
                assert len(page) <= 40
                got += page
                pages += 1
                if len(page) < 40:
                    break
                before = page[-1]["seq"]
            latest = {r["data"]["alert_id"]: r for r in got}
            assert len(latest) == len(got)  # one row per alert, never a second page with the same one
            states = {a: alert.state for a in ids if (alert := rec.book.get(a)) is not None}
            expected = [a for a in ids if state is None or states[a] == state]
            assert set(latest) == set(expected)
            assert [r["seq"] for r in got] == sorted((r["seq"] for r in got), reverse=True)
            assert pages == len(expected) // 40 + 1
        resolved = (await store.alert_page(1, None, "resolved"))[0]
        assert resolved["data"]["alert_id"] == ids[245] and resolved["actor"] == "olga"
        assert resolved["raised_at"] == 1245.0 and resolved["ts"] == 3245.0
        assert resolved["acknowledged_by"] is None  # 245 is not a multiple of 3
        acked = (await store.alert_page(1, None, "acknowledged"))[0]
        assert acked["data"]["alert_id"] == ids[249] and acked["acknowledged_by"] == "sam"
        assert (acked["raised_at"], acked["acknowledged_at"]) == (1249.0, 2249.0)
        assert (await store.alert_page(5, 1, None)) == []  # nothing below the first seq
    finally:
        await store.close()


def plan(conn: sqlite3.Connection, sql: str, args: list[object]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


async def test_alert_queries_use_the_indexes_not_a_table_scan(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock())
    rec = Recorder(store)
    for n in range(20):
        await rec.store_all(rec.book.signal(panic(n), float(n)))
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("ANALYZE")  # statistics must not talk the planner out of the index either
    history = plan(conn, HISTORY_SQL, ["x"])
    assert "USING INDEX events_alert_id" in history and "SCAN" not in history, history
    page = plan(conn, PAGE_SQL, [2**63 - 1, "raised", "raised", 50])
    assert "SEARCH e USING INDEX events_type_seq" in page, page
    assert page.count("USING INDEX events_alert_id") == 3 and "SCAN" not in page, page
    assert "TEMP B-TREE" not in page, page  # walked in seq order: a page stops early, no sort of all rows


async def test_an_upgraded_database_serves_alerts_stored_before_the_index(tmp_path: Path) -> None:
    old = await Store.open(tmp_path, ManualClock(), target_version=4)
    rec = Recorder(old)
    (raised,) = rec.book.signal(panic(1), 10.0)
    await rec.store_all([raised, rec.book.acknowledge(raised.alert_id, "sam", "", 11.0)])
    await old.close()
    store = await Store.open(tmp_path)
    try:
        assert [r["action"] for r in await store.alert_history(raised.alert_id)] == ["raised", "acknowledged"]
        (row,) = await store.alert_page(10, None, str(AlertState.ACKNOWLEDGED))
        assert row["data"]["alert_id"] == raised.alert_id and row["raised_at"] == 10.0
    finally:
        await store.close()


async def test_an_alert_open_for_longer_than_the_replay_window_is_still_replayed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock())
    try:
        rec = Recorder(store)
        await rec.store_all(rec.book.signal(panic(0), 1.0))  # open, and soon very old
        old_id = rec.book.open_alerts()[0].alert_id
        for n in range(1, 40):  # newer alerts, each raised and resolved
            await rec.store_all(rec.book.signal(panic(n), 2.0 + n))
            cleared = AlertSignal(f"panic:r1:n{n}", "panic", False, Severity.CRITICAL, "r1", "", 0.0, {})
            await rec.store_all(rec.book.signal(cleared, 2.5 + n))
        replay = await store.alert_replay(recent=10)
        book = AlertBook()
        for event in replay:
            book.replay(event.data, event.severity, event.room_id, event.occurred_at)
        assert [a.alert_id for a in book.open_alerts()] == [old_id]
        assert len(replay) == 11  # the open alert's one row and the newest ten
        assert [e.occurred_at for e in replay] == sorted(e.occurred_at for e in replay)
    finally:
        await store.close()
