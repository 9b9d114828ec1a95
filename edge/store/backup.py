"""Online backup of the gateway database and its restore into a stopped gateway's data dir."""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.errors import StoreError
from edge.store.schema import LATEST_VERSION

# SQLite's unix VFS holds a shared lock on this byte of <db>-shm for as long as a connection to a
# WAL database is open (the "dead man switch"): an exclusive lock on it fails while any process
# (the daemon, an `edge user` command) has the database open, idle or not.
_SHM_DMS_BYTE = 128


class BackupError(StoreError):
    """A backup or restore could not be done; the message says why in one line."""


@dataclass(frozen=True)
class BackupInfo:
    """What a backup file holds."""

    path: Path
    bytes: int
    schema_version: int
    events: int
    audit: int
    last_seq: int  # the last event seq issued: a database with a higher one holds newer events


def stamp(epoch: float | None = None) -> str:
    """A UTC timestamp for file names: 20260127T013000Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if epoch is None else epoch))


def backup(db_path: Path, target: Path) -> BackupInfo:
    """Copy the live database to target with SQLite's online backup API; checked, fsynced, renamed."""
    if not db_path.is_file():
        raise BackupError(f"no database at {db_path}")
    if target.exists():
        raise BackupError(f"{target} already exists")
    fresh_dir = not target.parent.exists()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Root backing up for the service user: the backups dir and file belong to the database's
    # owner, or the daily timer (running as that user) could no longer write there.
    owner = db_path.stat() if os.geteuid() == 0 else None
    if owner is not None and fresh_dir:
        os.chown(target.parent, owner.st_uid, owner.st_gid)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # The copy holds password hashes and the audit log: private from its first byte.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        src = sqlite3.connect(_uri(db_path), uri=True, timeout=30.0)
        try:
            dst = sqlite3.connect(partial)
            try:
                # All pages in one step: one read transaction, a consistent snapshot; in WAL mode the
                # daemon keeps writing meanwhile. (Stepwise copies restart on every foreign write.)
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            finally:
                dst.close()
        finally:
            src.close()
        info = inspect(partial, target)
        _fsync(partial)
        if owner is not None:
            os.chown(partial, owner.st_uid, owner.st_gid)
        partial.rename(target)
        _fsync(target.parent)
    except sqlite3.Error as err:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {db_path} failed: {err}") from err
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupInfo(target, info.bytes, info.schema_version, info.events, info.audit, info.last_seq)


def inspect(path: Path, label: Path | None = None) -> BackupInfo:
    """Check a database file (integrity, schema version <= this release's, an events table)."""
    name = label or path  # what the messages call it (a copy is checked under its original's name)
    if not path.is_file():
        raise BackupError(f"{name} is not a file")
    try:
        conn = sqlite3.connect(_uri(path), uri=True)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{name} fails the integrity check: {check}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"schema_version", "events", "counters"} <= tables:
                raise BackupError(f"{name} is not a gateway database (no events, counters or "
                                  "schema_version table)")
            version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
            events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            audit = int(conn.execute("SELECT count(*) FROM audit").fetchone()[0]) if "audit" in tables else 0
            row = conn.execute("SELECT value FROM counters WHERE name = 'event_seq'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise BackupError(f"{name} is not a usable SQLite database: {err}") from err
    if version > LATEST_VERSION:
        raise BackupError(f"{name} has schema version {version}, newer than this release ({LATEST_VERSION})")
    return BackupInfo(path, path.stat().st_size, version, events, audit, int(row[0]) if row else 0)


def in_use(db_path: Path) -> bool:
    """True while some process has the database open (the gateway is running)."""
    shm = Path(f"{db_path}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False  # no connection since the last clean close
    except OSError as err:
        raise BackupError(f"cannot tell whether the gateway runs ({shm}: {err.strerror}); "
                          "run as root or the gateway's user") from err
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE)
        return False
    finally:
        os.close(fd)


def restore(source: Path, db_path: Path, force: bool = False,
            epoch: float | None = None) -> tuple[BackupInfo, list[Path]]:
    """Put a backup in place of db_path (gateway stopped); return its info and the files moved aside.

    Without force, a current database holding events the backup lacks (a higher last seq) is kept:
    restoring over it would lose them. A current database that fails its check is replaced.
    """
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    data_dir = db_path.parent
    if not data_dir.is_dir():
        raise BackupError(f"data dir {data_dir} does not exist (install the gateway first)")
    if in_use(db_path):
        raise BackupError(f"{db_path} is open by a running gateway; stop it first (systemctl stop edge)")
    owner = data_dir.stat()
    partial = data_dir / f"{db_path.name}.restore-partial"
    partial.unlink(missing_ok=True)
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with source.open("rb") as src, partial.open("r+b") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        # Checked on the copy (the original is never opened for writing): a bad file is refused
        # before the current database is touched.
        info = inspect(partial, source)
        _check_not_newer(db_path, info, force)
        _fsync(partial)
        if os.geteuid() == 0:  # root restoring for the service user: the daemon must own its file
            os.chown(partial, owner.st_uid, owner.st_gid)
        moved: list[Path] = []
        aside = f"{db_path.name}.before-restore-{stamp(epoch)}"
        for suffix in ("", "-wal", "-shm"):  # the WAL may hold the newest commits: it goes along
            current = Path(f"{db_path}{suffix}")
            if current.exists():
                moved.append(current.rename(data_dir / f"{aside}{suffix}"))
        partial.rename(db_path)
        _fsync(data_dir)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise BackupError(f"restore into {data_dir} failed: {err}") from err
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupInfo(db_path, info.bytes, info.schema_version, info.events, info.audit,
                      info.last_seq), moved


def _check_not_newer(db_path: Path, backup_info: BackupInfo, force: bool) -> None:
    if force or not db_path.is_file():
        return
    try:
        current = inspect(db_path)
    except BackupError:
        return  # a damaged database is what a restore is for
    if current.last_seq > backup_info.last_seq:
        raise BackupError(f"{db_path} holds newer events (last seq {current.last_seq}) than the backup "
                          f"(last seq {backup_info.last_seq}); use --force to replace it anyway")


def _uri(path: Path) -> str:
    """An SQLite URI opening an existing file read-write without ever creating it."""
    return f"{path.resolve().as_uri()}?mode=rw"


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_target(data_dir: Path) -> Path:
    """<data_dir>/backups/edge-<UTC timestamp>.db."""
    return data_dir / "backups" / f"edge-{stamp()}.db"


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` edge-*.db backups in directory; return what was deleted."""
    # The UTC timestamp in the name sorts in time order; unfinished *.partial files are not matched.
    backups = sorted(directory.glob("edge-*.db"), reverse=True)
    doomed = backups[max(keep, 1):]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed
