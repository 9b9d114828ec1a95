"""Retention SQL: delete old rows one bounded batch at a time.

Functions take the sqlite3 connection; the caller (Database) owns the transaction, one per batch, so
a large delete never holds the write lock long enough to delay an event commit noticeably.
"""

from __future__ import annotations

import sqlite3

from edge.store import outbox

TABLES = ("readings", "events", "commands", "audit")
PRUNE_BEFORE = "audit.prune_before"  # meta key, set only inside the audit delete's own transaction
ANCHOR = "audit.anchor"  # meta key: hash of the newest deleted audit row, where verification starts

# Transitions of alerts still open, however old: the alert book is rebuilt from them at start.
_KEEP_OPEN_ALERTS = """
INSERT INTO temp.retention_keep (seq)
SELECT o.seq FROM events o WHERE o.type = 'alert' AND json_extract(o.data, '$.alert_id') IN (
    SELECT json_extract(l.data, '$.alert_id') FROM events l INDEXED BY events_type_seq
    WHERE l.type = 'alert' AND json_extract(l.data, '$.state') != 'resolved'
        AND l.seq = (SELECT max(k.seq) FROM events k WHERE k.type = 'alert'
                     AND json_extract(k.data, '$.alert_id') = json_extract(l.data, '$.alert_id')))
"""


def prepare(conn: sqlite3.Connection) -> None:
    """Note (in a temp table) the events a run must keep whatever their age: open alerts' transitions."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS retention_keep (seq INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.retention_keep")
    conn.execute(_KEEP_OPEN_ALERTS)


def delete_batch(conn: sqlite3.Connection, table: str, cutoff: float, batch: int,
                 keep_queued: bool = True) -> int:
    """Delete up to batch rows of table older than cutoff (epoch s); return how many went.

    keep_queued (events only): keep events still waiting in the outbox; without an uplink nothing
    will ever send them, so they go with their outbox rows (counted as dropped 'retention').
    """
    if table == "readings":
        cur = conn.execute("DELETE FROM readings WHERE id IN "
                           "(SELECT id FROM readings WHERE ts < ? ORDER BY ts LIMIT ?)", [cutoff, batch])
    elif table == "events":
        return _delete_events(conn, cutoff, batch, keep_queued)
    elif table == "commands":
        # received_at <= finished_at, so the received_at index narrows the scan; running ones stay.
        cur = conn.execute(
            "DELETE FROM commands WHERE rowid IN (SELECT rowid FROM commands WHERE received_at < ? "
            "AND finished_at IS NOT NULL AND finished_at < ? LIMIT ?)", [cutoff, cutoff, batch])
    elif table == "audit":
        return _delete_audit(conn, cutoff, batch)
    else:
        raise ValueError(f"no retention for table {table!r}")
    return int(cur.rowcount)


def _delete_events(conn: sqlite3.Connection, cutoff: float, batch: int, keep_queued: bool) -> int:
    # stored_at is the gateway's clock (occurred_at may come from a device's). With an uplink, an
    # event still in the outbox has not reached the campus platform yet and is kept whatever its age.
    queued = ("AND seq NOT IN (SELECT seq FROM outbox WHERE msg_class = 'event' AND seq IS NOT NULL) "
              if keep_queued else "")
    seqs = [row[0] for row in conn.execute(
        f"SELECT seq FROM events WHERE stored_at < ? {queued}"
        "AND seq NOT IN (SELECT seq FROM temp.retention_keep) ORDER BY seq LIMIT ?", [cutoff, batch])]
    if not seqs:
        return 0
    marks = ",".join("?" * len(seqs))
    if not keep_queued:
        gone = conn.execute(f"DELETE FROM outbox WHERE msg_class = 'event' AND seq IN ({marks}) "
                            "RETURNING msg_class, bytes", seqs).fetchall()
        outbox.removed(conn, gone, "dropped", "retention")
    return int(conn.execute(f"DELETE FROM events WHERE seq IN ({marks})", seqs).rowcount)


def _delete_audit(conn: sqlite3.Connection, cutoff: float, batch: int) -> int:
    """Delete the oldest audit rows below cutoff as a prefix of the chain, and move the anchor."""
    # Only a prefix by id: a row in the middle with an old ts (the clock was stepped back) stays,
    # or the chain would break. The newest row always stays, so ids never restart from 1.
    first_kept = conn.execute(
        "SELECT coalesce((SELECT min(id) FROM audit WHERE ts >= ?), (SELECT max(id) FROM audit))",
        [cutoff]).fetchone()[0]
    if first_kept is None:
        return 0
    rows = conn.execute("SELECT id, hash FROM audit WHERE id < ? ORDER BY id LIMIT ?",
                        [first_kept, batch]).fetchall()
    if not rows:
        return 0
    last_id, last_hash = rows[-1]
    # The trigger (migration 7) allows the delete only while this cutoff is in meta: set it,
    # delete, record the anchor, and remove the cutoff again before the transaction commits.
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [PRUNE_BEFORE, repr(cutoff)])
    cur = conn.execute("DELETE FROM audit WHERE id <= ?", [last_id])
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [ANCHOR, last_hash])
    conn.execute("DELETE FROM meta WHERE key = ?", [PRUNE_BEFORE])
    return int(cur.rowcount)


def audit_anchor(conn: sqlite3.Connection) -> str | None:
    """The hash the oldest kept audit row chains to after a prune, or None if never pruned."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [ANCHOR]).fetchone()
    return None if row is None else str(row[0])
