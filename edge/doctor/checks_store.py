"""Data directory, free disk space and the SQLite database (opened read-only)."""

from __future__ import annotations

import getpass
import os
import shutil
import sqlite3
import time
from pathlib import Path

from edge.config import EdgeConfig
from edge.doctor.report import FAIL, PASS, WARN, Line
from edge.store import DB_FILENAME, LATEST_VERSION


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def data_dir(config: EdgeConfig) -> list[Line]:
    """The data dir is (or can be made) writable by this user, and the disk has room."""
    path = config.data_dir
    user = getpass.getuser()
    if path.exists():
        if not path.is_dir():
            line = Line(FAIL, "data dir", f"{path} is not a directory: move the file out of the way")
        elif os.access(path, os.W_OK | os.X_OK):
            line = Line(PASS, "data dir", f"{path} exists and is writable by {user}")
        else:
            line = Line(FAIL, "data dir", f"{path} is not writable by {user}: chown -R edge:edge {path} "
                                          "(the daemon runs as the edge user)")
    else:
        parent = _existing_ancestor(path)
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            line = Line(PASS, "data dir", f"{path} does not exist yet; {user} can create it on first start")
        else:
            line = Line(FAIL, "data dir", f"{path} does not exist and {user} cannot create it in {parent}: "
                                          "create it owned by the edge user (the installer does)")
    return [line, _disk_space(path, config.store.min_free_mb)]


def _disk_space(path: Path, min_free_mb: float) -> Line:
    where = _existing_ancestor(path)
    free_mb = shutil.disk_usage(where).free / (1024 * 1024)
    found = f"{free_mb:,.0f} MiB free on the file system of {where} (store.min_free_mb: {min_free_mb:g})"
    if free_mb < min_free_mb:
        return Line(FAIL, "disk space", f"{found}: the uplink stops queueing telemetry; free some space")
    if free_mb < 2 * min_free_mb:
        return Line(WARN, "disk space", f"{found}: less than twice the minimum; free some space soon")
    return Line(PASS, "disk space", found)


def database(config: EdgeConfig, timeout_s: float = 5.0) -> list[Line]:
    """Schema version and PRAGMA quick_check of the database, without writing to it."""
    path = config.data_dir / DB_FILENAME
    if not path.exists():
        return [Line(PASS, "database", f"no {path} yet: the daemon creates it on first start")]
    try:
        # mode=ro: the doctor may run while the daemon writes; it must never change the file.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as err:
        return [Line(FAIL, "database", f"cannot open {path} read-only: {err}")]
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = 0
        if "schema_version" in tables:
            version = int(conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)
        # A large database on an SD card may take minutes to check: stop at the deadline and say
        # so, rather than lose the version line to the runner's timeout.
        deadline = time.monotonic() + timeout_s
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            check = [row[0] for row in conn.execute("PRAGMA quick_check")]
        except sqlite3.OperationalError as err:
            if "interrupt" not in str(err):
                raise
            check = None
    except sqlite3.Error as err:
        return [Line(FAIL, "database", f"cannot read {path}: {err}")]
    finally:
        conn.close()
    lines = []
    if version > LATEST_VERSION:
        lines.append(Line(FAIL, "database", f"schema version {version} is newer than this edge "
                                            f"({LATEST_VERSION}): install the newer edge or restore a "
                                            "backup"))
    elif version < LATEST_VERSION:
        lines.append(Line(WARN, "database", f"schema version {version}, this edge has {LATEST_VERSION}: "
                                            "will be migrated on start (edge backup first)"))
    else:
        lines.append(Line(PASS, "database", f"{path}: schema version {version} (current)"))
    if check is None:
        lines.append(Line(WARN, "database integrity", f"PRAGMA quick_check did not finish within "
                                                      f"{timeout_s:g}s (a large database): run "
                                                      "edge doctor --timeout 600 to let it finish"))
    elif check == ["ok"]:
        lines.append(Line(PASS, "database integrity", "PRAGMA quick_check: ok"))
    else:
        shown = "; ".join(check[:3])
        lines.append(Line(FAIL, "database integrity", f"PRAGMA quick_check found problems: {shown} "
                                                      "(stop the daemon and restore from a backup)"))
    return lines
