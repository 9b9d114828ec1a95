"""The uplink's store-and-forward outbox: per-class caps, TTL, delivery and its running totals.

Functions take the sqlite3 connection; the caller (Database) owns the transaction. Row and byte
totals per class live in `counters` and change in the same transaction as the rows, so stats never
count a million-row backlog. A delivered row is deleted (the events table keeps every event), so
every row in the table is undelivered; queries still say `delivered_at IS NULL` for rows an older
release may have marked.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge.config_uplink import CLASSES, OutboxConfig

MB = 1024 * 1024  # max_mb in the config, as edge.uplink.intake reads it
Limits = dict[str, tuple[int, int, float | None]]  # class -> (max_rows, max_bytes, ttl_s)
REASONS = ("full", "expired", "retention")  # retention: old events with no uplink to send them
NO_BOUND = float("inf")
LAST_DELIVERED = "outbox.last_delivered_at"  # meta key


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One undelivered message as the uplink sender reads it."""

    id: int  # order within a class; for events id order == seq order
    msg_class: str  # 'event' | 'occupancy' | 'telemetry'
    seq: int | None  # the event seq for events, None otherwise
    topic: str  # the contract kind
    payload: str  # stored JSON body
    created_at: float
    expires_at: float | None


def limits_of(config: OutboxConfig) -> Limits:
    """The (max_rows, max_bytes, ttl_s) of each class from the uplink config."""
    out: Limits = {}
    for cls in CLASSES:
        lim = getattr(config, cls)
        out[cls] = (lim.max_rows, int(lim.max_mb * MB), lim.ttl_s)
    return out


DEFAULT_LIMITS = limits_of(OutboxConfig())


def check_limits(limits: Mapping[str, tuple[int, int, float | None]]) -> Limits:
    """Validate limits; classes not named keep their defaults. Raise ValueError."""
    out = dict(DEFAULT_LIMITS)
    for cls, (max_rows, max_bytes, ttl_s) in limits.items():
        if cls not in CLASSES:
            raise ValueError(f"unknown outbox class {cls!r}")
        if max_rows < 1 or max_bytes < 1 or (ttl_s is not None and ttl_s <= 0):
            raise ValueError(f"outbox limits of {cls!r} must be positive")
        if cls == "event" and ttl_s is not None:
            raise ValueError("safety events never expire")
        out[cls] = (int(max_rows), int(max_bytes), ttl_s)
    return out


def bump(conn: sqlite3.Connection, changes: Mapping[str, int]) -> None:
    """Add to named counters, creating them at zero."""
    conn.executemany(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        [(name, delta) for name, delta in changes.items() if delta])


def count_rows(conn: sqlite3.Connection, msg_class: str, rows: int, nbytes: int) -> None:
    """Record rows added (positive) or removed (negative) in a class's totals."""
    bump(conn, {f"outbox.rows.{msg_class}": rows, f"outbox.bytes.{msg_class}": nbytes})


def removed(conn: sqlite3.Connection, deleted: Iterable[tuple[str, int]], kind: str,
             reason: str = "") -> dict[str, int]:
    """Take deleted (class, bytes) rows off the totals and count them as `kind`; per-class counts."""
    per: dict[str, list[int]] = {}
    for cls, nbytes in deleted:
        acc = per.setdefault(cls, [0, 0])
        acc[0] += 1
        acc[1] += nbytes
    for cls, (rows, nbytes) in per.items():
        count_rows(conn, cls, -rows, -nbytes)
        bump(conn, {f"outbox.{kind}.{cls}" + (f".{reason}" if reason else ""): rows})
    return {cls: acc[0] for cls, acc in per.items()}


def _totals(conn: sqlite3.Connection, msg_class: str) -> tuple[int, int]:
    got = dict(conn.execute("SELECT name, value FROM counters WHERE name IN (?, ?)",
                            [f"outbox.rows.{msg_class}", f"outbox.bytes.{msg_class}"]))
    return int(got.get(f"outbox.rows.{msg_class}", 0)), int(got.get(f"outbox.bytes.{msg_class}", 0))


def enforce_cap(conn: sqlite3.Connection, msg_class: str, max_rows: int, max_bytes: int) -> int:
    """Delete a class's oldest undelivered rows until it fits its caps; return how many."""
    rows, size = _totals(conn, msg_class)
    excess_rows, excess_bytes = rows - max_rows, size - max_bytes
    if excess_rows <= 0 and excess_bytes <= 0:
        return 0
    cut, n, freed = None, 0, 0
    cursor = conn.execute("SELECT id, bytes FROM outbox INDEXED BY outbox_class_id "
                          "WHERE msg_class = ? AND delivered_at IS NULL ORDER BY id", [msg_class])
    for row_id, nbytes in cursor:
        if n >= excess_rows and freed >= excess_bytes:
            break
        cut, n, freed = row_id, n + 1, freed + nbytes
    cursor.close()
    deleted = conn.execute("DELETE FROM outbox INDEXED BY outbox_class_id WHERE msg_class = ? "
                           "AND delivered_at IS NULL AND id <= ? RETURNING msg_class, bytes",
                           [msg_class, cut]).fetchall()
    return removed(conn, deleted, "dropped", "full").get(msg_class, 0)


def insert(conn: sqlite3.Connection, msg_class: str, items: Iterable[tuple[str, float]],
           limits: Limits) -> int:
    """Queue (payload, created_at) occupancy/telemetry bodies (topic = class), enforce the cap; drops."""
    if msg_class not in CLASSES or msg_class == "event":
        raise ValueError(f"outbox_add takes occupancy or telemetry, not {msg_class!r}")
    max_rows, max_bytes, ttl_s = limits[msg_class]
    rows = []
    for payload, created in items:
        rows.append((msg_class, msg_class, payload, len(payload.encode()), created,
                     None if ttl_s is None else created + ttl_s))
    conn.executemany("INSERT INTO outbox (msg_class, topic, payload, bytes, created_at, expires_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    count_rows(conn, msg_class, len(rows), sum(r[3] for r in rows))
    return enforce_cap(conn, msg_class, max_rows, max_bytes)


def pending(conn: sqlite3.Connection, msg_class: str, limit: int, after_id: int, now: float | None,
            created_before: float | None, created_from: float | None) -> list[OutboxRow]:
    """Undelivered, unexpired rows of one class with id > after_id, by id, in a created_at window."""
    # Live rows (created_from) are few and recent: the created_at index finds them without walking
    # a million-row backlog; the backlog itself is read in id order from the start of the class.
    index = "outbox_class_created" if created_from is not None else "outbox_class_id"
    rows = conn.execute(
        f"SELECT id, msg_class, seq, topic, payload, created_at, expires_at FROM outbox INDEXED BY {index} "
        "WHERE msg_class = ? AND delivered_at IS NULL AND id > ? AND (expires_at IS NULL OR expires_at > ?) "
        "AND created_at >= ? AND created_at < ? ORDER BY id LIMIT ?",
        [msg_class, after_id, -NO_BOUND if now is None else now,
         -NO_BOUND if created_from is None else created_from,
         NO_BOUND if created_before is None else created_before, limit])
    return [OutboxRow(*row) for row in rows]


def delivered(conn: sqlite3.Connection, ids: list[int], ts: float) -> None:
    """Delete delivered rows (ids already gone are ignored), count them, remember when."""
    deleted = conn.execute("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?)) "
                           "RETURNING msg_class, bytes", [json.dumps(ids)]).fetchall()
    removed(conn, deleted, "delivered")
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [LAST_DELIVERED, repr(ts)])


def expire(conn: sqlite3.Connection, now: float, limit: int) -> dict[str, int]:
    """Delete up to `limit` undelivered rows whose expires_at <= now; per-class counts."""
    deleted = conn.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox INDEXED BY outbox_expires "
        "WHERE expires_at <= ? AND delivered_at IS NULL LIMIT ?) RETURNING msg_class, bytes",
        [now, limit]).fetchall()
    return removed(conn, deleted, "dropped", "expired")


def stats(conn: sqlite3.Connection, now: float, limits: Limits) -> dict[str, Any]:
    """Backlog per class from the running totals, drops by reason, deliveries, last delivery."""
    # '/' sorts right after '.': a primary-key range over the outbox counters only.
    counters = dict(conn.execute("SELECT name, value FROM counters WHERE name >= 'outbox.' "
                                 "AND name < 'outbox/'"))
    classes: dict[str, Any] = {}
    for cls in CLASSES:
        max_rows, max_bytes, _ttl = limits[cls]
        rows, size = int(counters.get(f"outbox.rows.{cls}", 0)), int(counters.get(f"outbox.bytes.{cls}", 0))
        (oldest,) = conn.execute("SELECT min(created_at) FROM outbox INDEXED BY outbox_class_created "
                                 "WHERE msg_class = ?", [cls]).fetchone()
        classes[cls] = {"count": rows, "bytes": size,
                        "oldest_age_s": None if oldest is None else max(0.0, now - oldest),
                        "max_rows": max_rows, "max_bytes": max_bytes,
                        "over_cap": rows > max_rows or size > max_bytes}
    dropped = {cls: {reason: int(counters.get(f"outbox.dropped.{cls}.{reason}", 0)) for reason in REASONS}
               for cls in CLASSES}
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [LAST_DELIVERED]).fetchone()
    return {"classes": classes, "dropped": dropped,
            "delivered": {cls: int(counters.get(f"outbox.delivered.{cls}", 0)) for cls in CLASSES},
            "last_delivered_at": None if row is None else float(row[0])}
