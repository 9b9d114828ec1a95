"""Retention: old rows go in batches, undelivered events and open alerts stay, the audit chain holds."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from edge.bus import Bus
from edge.clock import ManualClock
from edge.config_ops import RetentionConfig
from edge.disk_guard import DiskGuard
from edge.errors import StoreError
from edge.events import Reading, SafetyEvent, Severity
from edge.recorder import Recorder
from edge.retention import RetentionService
from edge.store import DB_FILENAME, Store
from edge.vision.snapshots import SnapshotRefused, SnapshotStore
from tests.conftest import cancel_and_wait

DAY = 86400.0
MB = 1024 * 1024


def alert(alert_id: str, state: str) -> SafetyEvent:
    return SafetyEvent("alert", Severity.CRITICAL, 1.0, "alerts", "r1",
                       {"alert_id": alert_id, "state": state, "action": state})


async def deliver_all_events(store: Store) -> None:
    rows = await store.outbox_pending("event", 10_000)
    await store.outbox_delivered([r.id for r in rows])


async def test_old_rows_go_and_undelivered_events_open_alerts_and_running_commands_stay(
    tmp_path: Path
) -> None:
    clock = ManualClock(start=1_700_000_000.0)
    store = await Store.open(tmp_path, clock)
    await store.add_readings([Reading("d", "co2", 400.0, "ppm", clock.now() - i) for i in range(30)])
    delivered_old = await store.add_event(SafetyEvent("smoke_alarm", Severity.CRITICAL, 1.0, "n", "r1"))
    await store.add_event(alert("open-1", "raised"))
    await store.add_event(alert("done-1", "raised"))
    await store.add_event(alert("done-1", "resolved"))
    await deliver_all_events(store)
    undelivered_old = await store.add_event(SafetyEvent("door_forced", Severity.CRITICAL, 1.0, "n", "r1"))
    await store.claim_command("c-done", "d", "on", {}, "ada")
    await store.finish_command("c-done", "ok", {})
    await store.claim_command("c-running", "d", "on", {}, "ada")
    for i in range(5):
        await store.append_audit("ada", "user.add", f"old{i}")

    clock.advance(400 * DAY)  # everything above is past every default retention
    await store.add_readings([Reading("d", "co2", 410.0, "ppm", clock.now())])
    recent = await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, 2.0, "n", "r1"))
    await store.append_audit("ada", "user.add", "recent")
    snapshots = SnapshotStore(tmp_path / "snapshots", face_finder=None, blur_faces=False,
                              max_age_s=7 * DAY, clock=clock.now)
    snapshots.save(np.zeros((16, 16, 3), np.uint8), "cam1", "zone:z1")
    clock.advance(8 * DAY)

    service = RetentionService(RetentionConfig(), store, snapshots, clock)
    result = await service.run_once()
    assert result["last_run_at"] == clock.now()
    assert result["deleted"] == {"readings": 30, "events": 3, "commands": 1, "audit": 5, "snapshots": 1}
    assert service.report() == result

    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    seqs = {r[0] for r in conn.execute("SELECT seq FROM events")}
    open_alert = {r[0] for r in conn.execute(
        "SELECT seq FROM events WHERE json_extract(data, '$.alert_id') = 'open-1'")}
    assert seqs == {undelivered_old.seq, recent.seq} | open_alert and len(open_alert) == 1
    assert delivered_old.seq not in seqs
    assert [r[0] for r in conn.execute("SELECT command_id FROM commands")] == ["c-running"]
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions == ["user.add", "retention.run"]
    conn.close()
    assert await store.verify_audit() is None

    # Nothing left to delete: no audit record for an empty run.
    again = await service.run_once()
    assert not any(again["deleted"].values())
    assert (await store.stats())["audit"] == 2
    await store.close()


async def test_pruned_chain_still_catches_a_tampered_kept_row_and_recent_rows_cannot_be_deleted(
    tmp_path: Path
) -> None:
    clock = ManualClock()
    store = await Store.open(tmp_path, clock)
    for i in range(12):
        await store.append_audit("ada", "user.add", f"old{i}")
    clock.advance(200 * DAY)
    for i in range(3):
        await store.append_audit("sam", "alert.acknowledged", f"a{i}")
    # Small batches: the anchor moves with every committed batch, the chain holds after each.
    assert await store.prune("audit", clock.now() - 180 * DAY, batch=5) == 12
    assert await store.verify_audit() is None
    await store.append_audit("sam", "alert.resolved", "a0")
    assert await store.verify_audit() is None
    await store.close()

    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    ids = [r[0] for r in conn.execute("SELECT id FROM audit ORDER BY id")]
    assert ids == [13, 14, 15, 16]
    assert conn.execute("SELECT value FROM meta WHERE key = 'audit.prune_before'").fetchone() is None
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE id = 14")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 14")
    conn.execute("DROP TRIGGER audit_no_update")  # raw file access: the chain still tells
    conn.execute("UPDATE audit SET target = 'a9' WHERE id = 14")
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path, clock)
    assert await store.verify_audit() == 14
    await store.close()


async def test_audit_rows_younger_than_180_days_cannot_be_deleted_even_with_the_cutoff_set(
    tmp_path: Path
) -> None:
    clock = ManualClock(start=time.time() - 10 * DAY)  # the trigger measures age on the real clock
    store = await Store.open(tmp_path, clock)
    for i in range(3):
        await store.append_audit("ada", "user.add", f"u{i}")
    # The job itself, asked to delete everything: the trigger refuses, nothing goes.
    with pytest.raises(StoreError):
        await store.prune("audit", clock.now() + DAY)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("INSERT INTO meta (key, value) VALUES ('audit.prune_before', '1e99')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE id = 1")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == 3
    conn.close()


async def test_without_an_uplink_old_events_go_with_their_outbox_rows(tmp_path: Path) -> None:
    clock = ManualClock()
    store = await Store.open(tmp_path, clock)
    old = [await store.add_event(SafetyEvent("door_forced", Severity.CRITICAL, 1.0, "n", "r1"))
           for _ in range(3)]
    clock.advance(400 * DAY)
    recent = await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, 2.0, "n", "r1"))
    kept = await RetentionService(RetentionConfig(), store, None, clock, uplink=True).run_once()
    assert kept["deleted"]["events"] == 0  # queued for an uplink: kept whatever their age
    gone = await RetentionService(RetentionConfig(), store, None, clock, uplink=False).run_once()
    assert gone["deleted"]["events"] == 3
    pending = await store.outbox_pending("event", 100)
    assert [json.loads(r.payload)["seq"] for r in pending] == [recent.seq]
    stats = await store.outbox_stats()
    assert stats["classes"]["event"]["count"] == 1  # the totals follow the deleted rows
    assert stats["dropped"]["event"]["retention"] == 3
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    assert {r[0] for r in conn.execute("SELECT seq FROM events")} == {recent.seq}
    assert not {e.seq for e in old} & {r[0] for r in conn.execute("SELECT seq FROM outbox")}
    conn.close()
    await store.close()


async def test_a_snapshot_dir_removed_by_hand_does_not_stop_retention(tmp_path: Path) -> None:
    clock = ManualClock()
    (tmp_path / "db").mkdir()
    store = await Store.open(tmp_path / "db", clock)
    snapshots = SnapshotStore(tmp_path / "snapshots", face_finder=None, blur_faces=False, clock=clock.now)
    shutil.rmtree(tmp_path / "snapshots")
    result = await RetentionService(RetentionConfig(), store, snapshots, clock).run_once()
    assert result["deleted"]["snapshots"] == 0
    await store.close()


async def test_a_deleted_anchor_row_is_detected_too(tmp_path: Path) -> None:
    clock = ManualClock()
    store = await Store.open(tmp_path, clock)
    for i in range(3):
        await store.append_audit("ada", "user.add", f"old{i}")
    clock.advance(400 * DAY)
    for i in range(3):
        await store.append_audit("ada", "user.add", f"new{i}")
    assert await store.prune("audit", clock.now() - 365 * DAY) == 3
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE id = 4")  # the oldest kept row, removed by hand
    conn.commit()
    conn.close()
    store = await Store.open(tmp_path, clock)
    assert await store.verify_audit() == 5
    await store.close()


async def test_big_deletes_run_in_batches_that_let_an_event_commit_in_between(tmp_path: Path) -> None:
    clock = ManualClock()
    store = await Store.open(tmp_path, clock)
    await store.add_readings([Reading("d", "co2", 1.0, "ppm", float(i)) for i in range(60_000)])
    prune = asyncio.ensure_future(store.prune("readings", clock.now(), batch=500))
    await asyncio.sleep(0)  # the first batch is queued
    envelope = await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, 1.0, "n", "r1"))
    assert envelope.seq == 1 and not prune.done()
    assert await prune == 60_000
    await store.close()


def test_disk_guard_levels_are_cached_and_counted() -> None:
    free = [500 * MB]
    now = [0.0]
    guard = DiskGuard(Path("/"), 200, free_bytes=lambda _: free[0], monotonic=lambda: now[0])
    assert guard.check() == "ok"
    free[0] = 100 * MB
    assert guard.check() == "ok"  # cached
    now[0] += 10
    assert guard.check() == "low"
    free[0] = 10 * MB
    guard.forget()
    assert guard.check() == "critical"
    guard.count_drop("readings", 3)
    assert guard.report() == {"level": "critical", "min_free_mb": 200, "dropped": {"readings": 3}}
    assert DiskGuard(Path("/"), 0, free_bytes=lambda _: 0).check() == "ok"  # threshold off


async def test_low_disk_stops_snapshots_and_retention_frees_the_oldest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    snapshots = SnapshotStore(tmp_path / "snaps", face_finder=None, blur_faces=False, clock=clock.now)
    image = np.full((32, 32, 3), 127, np.uint8)
    kept = []
    for _ in range(6):
        kept.append(snapshots.save(image, "cam1", "zone:z").snapshot_id)
        clock.advance(1)
    # Free space is 200 MB minus 10 MB per snapshot on disk: 6 snapshots -> 140 MB, low.
    guard = DiskGuard(tmp_path, 200, free_bytes=lambda _: 200 * MB - 10 * MB * len(snapshots.list()),
                      cache_s=0)
    guarded = SnapshotStore(tmp_path / "snaps", face_finder=None, blur_faces=False, clock=clock.now,
                            guard=guard)
    with caplog.at_level(logging.WARNING, logger="edge.vision.snapshots"):
        for _ in range(3):
            with pytest.raises(SnapshotRefused, match="disk space low"):
                guarded.save(image, "cam1", "zone:z")
    assert guard.dropped == {"snapshots": 3}
    assert sum("not kept until space is freed" in r.message for r in caplog.records) == 1

    store = await Store.open(tmp_path, clock)
    service = RetentionService(RetentionConfig(), store, guarded, clock, guard)
    freed = await service.free_disk()
    await store.close()
    # Until free >= 200 MB: every snapshot had to go (10 at a time), and none are left.
    assert freed == 6 and snapshots.list() == []
    assert guarded.save(image, "cam1", "zone:z").snapshot_id  # kept again at once


async def test_retention_frees_only_what_is_needed(tmp_path: Path) -> None:
    clock = ManualClock()
    snapshots = SnapshotStore(tmp_path / "snaps", face_finder=None, blur_faces=False, clock=clock.now)
    ids = []
    for _ in range(25):
        ids.append(snapshots.save(np.zeros((8, 8, 3), np.uint8), "cam1", "x").snapshot_id)
        clock.advance(1)
    guard = DiskGuard(tmp_path, 100, free_bytes=lambda _: 110 * MB - 1 * MB * len(snapshots.list()))
    store = await Store.open(tmp_path, clock)
    assert await RetentionService(RetentionConfig(), store, snapshots, clock, guard).free_disk() == 20
    await store.close()
    assert {s.snapshot_id for s in snapshots.list()} == set(ids[20:])  # the newest stay


async def test_critical_disk_drops_readings_but_events_and_audit_are_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    free = [10 * MB]
    guard = DiskGuard(tmp_path, 200, free_bytes=lambda _: free[0], cache_s=0)
    store = await Store.open(tmp_path)
    bus = Bus()
    recorder = Recorder(bus, store, batch_max=10, flush_s=0.01, guard=guard)
    task = asyncio.create_task(recorder.run(lambda: None))
    with caplog.at_level(logging.ERROR, logger="edge.recorder"):
        for i in range(25):
            bus.publish(Reading("d", "co2", float(i), "ppm", float(i)))
        await store.add_event(SafetyEvent("panic_button", Severity.CRITICAL, 1.0, "n", "r1"))
        await store.append_audit("system", "test", "x")
        async with asyncio.timeout(5):
            while recorder.dropped.get("disk_full", 0) < 25:
                await asyncio.sleep(0.01)
    assert sum("disk nearly full" in r.message for r in caplog.records) == 1
    free[0] = 100 * MB  # low, not critical: readings are stored again
    bus.publish(Reading("d", "co2", 1.0, "ppm", 99.0))
    async with asyncio.timeout(5):
        while (await store.stats())["readings"] < 1:
            await asyncio.sleep(0.01)
    await cancel_and_wait(task)
    stats = await store.stats()
    await store.close()
    assert stats["readings"] == 1 and stats["events"] == 1 and stats["audit"] == 1
    assert guard.dropped == {"readings": 25} and recorder.recorded == 1


async def test_service_runs_soon_after_start(tmp_path: Path) -> None:
    clock = ManualClock()
    store = await Store.open(tmp_path, clock)
    await store.add_readings([Reading("d", "co2", 1.0, "ppm", clock.now() - 31 * DAY)])
    service = RetentionService(RetentionConfig(interval_s=10), store, None, clock, first_run_s=0)
    task = asyncio.create_task(service.run(lambda: None))
    async with asyncio.timeout(5):
        while service.last is None:
            await asyncio.sleep(0.01)
    await cancel_and_wait(task)
    assert service.last["deleted"]["readings"] == 1
    assert (await store.audit_page(10))[0]["action"] == "retention.run"
    await store.close()
