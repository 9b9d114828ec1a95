"""The SQLite store: migrations, the never-reused seq, the outbox, the audit chain."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from edge.clock import ManualClock
from edge.errors import DataDirUnusable, SchemaTooNew, StoreError
from edge.events import Envelope, Reading, SafetyEvent, Severity
from edge.store import DB_FILENAME, LATEST_VERSION, Store, prepare_data_dir


def event(kind: str = "panic_button") -> SafetyEvent:
    return SafetyEvent(kind, Severity.CRITICAL, 1_700_000_000.5, "node:n1", "r1", {"button": 1})


async def test_new_database_is_migrated_to_latest_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    assert await store.schema_version() == LATEST_VERSION
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"readings", "events", "outbox", "audit", "counters", "schema_version"} <= tables
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, LATEST_VERSION + 1))


@pytest.mark.parametrize("start_version", range(1, LATEST_VERSION))
async def test_upgrade_from_every_earlier_version_keeps_data(
    tmp_path: Path, start_version: int
) -> None:
    old = await Store.open(tmp_path, target_version=start_version)
    assert await old.schema_version() == start_version
    await old.add_readings([Reading("d1", "co2", 812.0, "ppm", 1.0, "r1")])
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    # Write an event the way release `start_version` did, before the outbox existed.
    conn.execute("UPDATE counters SET value = 1")
    conn.execute(
        "INSERT INTO events VALUES (1, 'e-1', 'smoke_alarm', 'critical', 'r1', 'node:n1', 5.0, 6.0,"
        " '{\"zone\":2}')"
    )
    if start_version >= 2:
        # From version 2 on, a release wrote the outbox row in the same transaction.
        conn.execute(
            "INSERT INTO outbox (msg_class, seq, topic, payload, bytes, created_at) VALUES "
            "('event', 1, 'event', json_object('event_id', 'e-1', 'seq', 1, 'type', 'smoke_alarm',"
            " 'severity', 'critical', 'room_id', 'r1', 'source', 'node:n1', 'occurred_at', 5.0,"
            " 'data', json('{\"zone\":2}')), 10, 6.0)"
        )
    conn.commit()
    conn.close()
    await old.close()

    store = await Store.open(tmp_path)
    assert await store.schema_version() == LATEST_VERSION
    stats = await store.stats()
    assert stats["readings"] == 1 and stats["events"] == 1 and stats["outbox_pending"] == 1
    envelope = await store.add_event(event())
    assert envelope.seq == 2
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    payloads = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM outbox ORDER BY seq")]
    # The migrated row has the same shape as a row the current code writes.
    assert set(payloads[0]) == set(payloads[1])
    assert payloads[0]["data"] == {"zone": 2} and payloads[0]["seq"] == 1


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("INSERT INTO schema_version (version, description) VALUES (?, 'future')",
                 [LATEST_VERSION + 1])
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNew):
        await Store.open(tmp_path)


async def test_seq_is_never_reused_even_after_rows_are_deleted(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, ManualClock())
    seqs = [(await store.add_event(event())).seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("DELETE FROM events")
    conn.execute("DELETE FROM outbox")
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path)
    assert (await store.add_event(event())).seq == 4
    await store.close()


async def test_event_and_outbox_row_are_written_together(tmp_path: Path) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    store = await Store.open(tmp_path, clock)
    envelope = await store.add_event(event("door_forced"))
    assert envelope.stored_at == 1_800_000_000.0
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    (payload,) = conn.execute("SELECT payload FROM outbox WHERE msg_class='event'").fetchone()
    record = json.loads(payload)
    assert record["event_id"] == envelope.event.event_id
    assert record["seq"] == 1 and record["type"] == "door_forced" and record["severity"] == "critical"


async def test_duplicate_event_id_is_rejected_and_seq_not_consumed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    first = event()
    await store.add_event(first)
    with pytest.raises(StoreError, match=r"UNIQUE constraint failed: events\.event_id") as err:
        await store.add_event(first)
    assert isinstance(err.value.__cause__, sqlite3.IntegrityError)
    assert (await store.add_event(event())).seq == 2
    await store.close()


async def test_non_finite_readings_are_dropped_not_the_batch(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.add_readings([Reading("d1", "pm25", float("nan"), "µg/m³", 1.0, "r1"),
                              Reading("d1", "co2", 800.0, "ppm", 1.0, "r1"),
                              Reading("d1", "co2", float("inf"), "ppm", 2.0, "r1")])
    assert (await store.stats())["readings"] == 1 and store.readings_dropped == 2
    await store.close()


async def test_audit_log_is_append_only_and_chained(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    for i in range(3):
        await store.append_audit("admin", "user.add", f"guard{i}", {"role": "security"})
    assert await store.verify_audit() is None
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor='mallory' WHERE id=2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE id=2")
    # Someone with raw file access drops the guard and edits a record: the chain shows it.
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET target='guard9' WHERE id=2")
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path)
    assert await store.verify_audit() == 2
    await store.close()


async def test_readings_batch_and_integrity(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.add_readings([Reading("d", "temperature", 20.0 + i, "°C", float(i)) for i in range(250)])
    assert (await store.stats())["readings"] == 250
    assert await store.integrity_check() == "ok"
    await store.close()
    await store.close()  # a second close is harmless


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DataDirUnusable, match="not usable"):
        prepare_data_dir(blocker / "data")
    assert prepare_data_dir(tmp_path / "new" / "dir").is_dir()


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    from edge.errors import StoreError

    (tmp_path / DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        await Store.open(tmp_path)


async def test_events_handed_in_together_share_commits_keep_their_order_and_a_bad_one_fails_alone(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        events = [SafetyEvent("panic_button", Severity.CRITICAL, float(i), "device:n1", "r1", {"i": i})
                  for i in range(200)]
        bad = SafetyEvent("panic_button", Severity.CRITICAL, 0.0, "device:n1", "r1", {"x": object()})
        results = await asyncio.gather(*(store.add_event(e) for e in events[:100]), store.add_event(bad),
                                       *(store.add_event(e) for e in events[100:]), return_exceptions=True)
        assert isinstance(results[100], TypeError)  # only the event that cannot be stored
        envelopes = [r for r in results if isinstance(r, Envelope)]
        assert [e.event.data["i"] for e in envelopes] == list(range(200))  # handed-in order
        assert [e.seq for e in envelopes] == list(range(1, 201))  # no gap, none reused
        stats = await store.stats()
        assert stats["events"] == 200 and stats["last_seq"] == 200
    finally:
        await store.close()


async def test_estimated_counts_follow_the_key_span_and_match_exact_ones_without_holes(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    assert (await store.stats(exact=False))["readings"] == 0
    await store.add_readings([Reading("d", "co2", 400.0 + i, "ppm", float(i)) for i in range(50)])
    for _ in range(3):
        await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, 1.0, "n", "r1"))
    exact, estimate = await store.stats(), await store.stats(exact=False)
    assert estimate == exact and exact["readings"] == 50 and exact["events"] == 3
    await store.close()
