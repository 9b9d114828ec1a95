"""`edge backup` while the gateway writes, and `edge restore` onto a replacement data dir."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.clock import ManualClock
from edge.events import SafetyEvent, Severity
from edge.store import DB_FILENAME, LATEST_VERSION, Store
from edge.store.backup import backup
from tests.conftest import write_config


def event(i: int) -> SafetyEvent:
    return SafetyEvent("panic_button", Severity.CRITICAL, float(i), "node:n1", "r1", {"i": i})


async def test_backup_while_events_are_written_then_restore_into_a_fresh_data_dir(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    store = await Store.open(live, ManualClock())
    for i in range(50):
        await store.add_event(event(i))
        await store.append_audit("ada", "user.add", f"u{i}")
    stop = asyncio.Event()

    async def keep_writing() -> int:
        n = 50
        while not stop.is_set():
            await store.add_event(event(n))
            await store.append_audit("system", "tick", str(n))
            n += 1
            await asyncio.sleep(0)
        return n

    writer = asyncio.ensure_future(keep_writing())
    await asyncio.sleep(0.05)
    target = tmp_path / "out" / "edge-backup.db"
    # The backup runs on another thread, as `edge backup` is another process: the daemon keeps writing.
    info = await asyncio.to_thread(backup, live / DB_FILENAME, target)
    await asyncio.sleep(0.05)
    stop.set()
    written = await writer
    await store.close()

    assert target.is_file() and not target.with_name(target.name + ".partial").exists()
    assert os.stat(target).st_mode & 0o077 == 0  # password hashes inside: owner only
    assert info.schema_version == LATEST_VERSION and info.bytes == target.stat().st_size
    assert 50 <= info.events < written  # a consistent snapshot taken mid-stream

    fresh = tmp_path / "replacement"
    fresh.mkdir()
    config = write_config(tmp_path, data_dir=str(fresh))
    assert main(["restore", str(target), "--config", str(config)]) == 0
    restored = await Store.open(fresh)
    stats = await restored.stats()
    assert stats["events"] == info.events == stats["last_seq"]
    assert stats["audit"] == info.audit
    assert await restored.verify_audit() is None
    assert (await restored.add_event(event(-1))).seq == info.events + 1
    await restored.close()
    conn = sqlite3.connect(fresh / DB_FILENAME)
    assert [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")] == list(
        range(1, info.events + 2))
    conn.close()


async def config_with_one_event(tmp_path: Path) -> Path:
    """A config whose data dir holds a database with one event."""
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    store = await Store.open(tmp_path / "data")
    await store.add_event(event(1))
    await store.close()
    return config


async def test_cli_backup_defaults_to_the_data_dir_and_prints_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = await config_with_one_event(tmp_path)
    assert main(["backup", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (made,) = (tmp_path / "data" / "backups").glob("edge-*.db")
    assert str(made) in out and f"schema version: {LATEST_VERSION}" in out and "events: 1" in out
    assert main(["backup", "--config", str(config), "--output", str(made)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err


async def test_backup_keep_deletes_all_but_the_newest_backups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = await config_with_one_event(tmp_path)
    backups = tmp_path / "data" / "backups"
    backups.mkdir()
    old = [backups / f"edge-2026010{day}T000000Z.db" for day in (1, 2, 3)]
    for path in old:
        path.write_bytes(b"an older backup")
    (backups / "edge-20260104T000000Z.db.partial").write_bytes(b"unfinished")  # not a backup: kept
    assert main(["backup", "--config", str(config), "--keep", "2"]) == 0
    out = capsys.readouterr().out
    left = sorted(p.name for p in backups.iterdir())
    assert len(left) == 3 and old[2].name in left and "edge-20260104T000000Z.db.partial" in left
    assert f"deleted old backup {old[0]}" in out and f"deleted old backup {old[1]}" in out
    assert main(["backup", "--config", str(config), "--keep", "0"]) == 1


async def test_restore_moves_the_current_database_aside_and_refuses_to_lose_newer_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data)
    await store.add_event(event(1))
    await store.close()
    saved = tmp_path / "saved.db"
    backup(data / DB_FILENAME, saved)
    store = await Store.open(data)
    await store.add_event(event(2))  # newer than the backup
    await store.close()

    assert main(["restore", str(saved), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "newer events" in err and "--force" in err and "Traceback" not in err
    assert main(["restore", str(saved), "--config", str(config), "--force"]) == 0
    out = capsys.readouterr().out
    (aside,) = data.glob("edge.db.before-restore-*")
    assert "moved aside" in out and str(aside) in out
    old = sqlite3.connect(aside)
    assert old.execute("SELECT count(*) FROM events").fetchone()[0] == 2  # nothing thrown away
    old.close()
    store = await Store.open(data)
    assert (await store.stats())["events"] == 1
    await store.close()


def test_restore_refuses_while_the_database_is_open_by_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    saved = tmp_path / "saved.db"
    conn = sqlite3.connect(saved)
    conn.executescript("CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES (1);"
                       "CREATE TABLE events (seq INTEGER); CREATE TABLE counters (name TEXT, value INTEGER);")
    conn.close()
    # A stand-in for the daemon: the gateway's own Database, open and idle, in another process.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from edge.store.database import Database; Database(Path(sys.argv[1])); print('open', flush=True); "
         "time.sleep(60)", str(data / DB_FILENAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert main(["restore", str(saved), "--config", str(config), "--force"]) == 1
        assert "stop it first" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # Once it is gone (even killed, leaving -wal and -shm behind) the restore goes ahead.
    assert main(["restore", str(saved), "--config", str(config), "--force"]) == 0


@pytest.mark.parametrize(("content", "message"), [
    (b"not a database at all, just text" * 100, "not a usable SQLite database"),
    (None, "not a gateway database"),
    ("future", "newer than this release"),
])
def test_restore_refuses_a_bad_backup_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | str | None, message: str
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    bad = tmp_path / "bad.db"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        conn = sqlite3.connect(bad)
        conn.execute("CREATE TABLE readings (id INTEGER)")
        if content == "future":
            conn.executescript("CREATE TABLE schema_version (version INTEGER);"
                               "CREATE TABLE events (seq INTEGER);"
                               "CREATE TABLE counters (name TEXT, value INTEGER);"
                               f"INSERT INTO schema_version VALUES ({LATEST_VERSION + 1});")
        conn.commit()
        conn.close()
    assert main(["restore", str(bad), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "data").iterdir()) == []  # nothing touched, no partial left


def test_backup_without_a_database_or_config_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    assert main(["backup", "--config", str(config)]) == 1
    assert "no database at" in capsys.readouterr().err
    assert main(["backup", "--config", str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another user")
async def test_root_backup_leaves_the_backups_to_the_database_owner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data)
    await store.add_event(event(1))
    await store.close()
    os.chown(data / DB_FILENAME, 4242, 4243)  # the service user's database
    info = backup(data / DB_FILENAME, data / "backups" / "edge-1.db")
    for path in (data / "backups", info.path):
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4243), path
