"""Stored alert transitions (events of type 'alert'): one alert's history, and pages of alerts.

Every query names `type = 'alert'` literally and `json_extract(data, '$.alert_id')` exactly as
migration 5's partial index does; otherwise SQLite would scan the whole events table.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

MAX_SEQ = 2**63 - 1  # SQLite's largest integer: "no upper bound" for paging

_SAME_ALERT = "json_extract({t}.data, '$.alert_id') = json_extract(e.data, '$.alert_id')"

HISTORY_SQL = (
    "SELECT seq, severity, room_id, occurred_at, data FROM events "
    "WHERE type = 'alert' AND json_extract(data, '$.alert_id') = ? ORDER BY seq"
)

# One row per alert: its latest transition (no later row of the same alert), newest first.
# INDEXED BY: walking (type, seq) backwards stops after one page; with statistics of a table that
# holds mostly alerts SQLite would otherwise pick a rowid range plus a sort of every row.
# raised_at and the last acknowledgement come from correlated look-ups on the alert_id index,
# so a page costs one statement, not one per alert.
PAGE_SQL = f"""
SELECT e.seq, e.severity, e.room_id, e.occurred_at, e.data,
    (SELECT f.occurred_at FROM events f WHERE f.type = 'alert' AND {_SAME_ALERT.format(t="f")}
        AND json_extract(f.data, '$.action') = 'raised' ORDER BY f.seq LIMIT 1) AS raised_at,
    json_extract(a.data, '$.actor'), a.occurred_at
FROM events e INDEXED BY events_type_seq
LEFT JOIN events a ON a.seq = (SELECT max(k.seq) FROM events k WHERE k.type = 'alert'
    AND {_SAME_ALERT.format(t="k")} AND json_extract(k.data, '$.action') = 'acknowledged')
WHERE e.type = 'alert' AND e.seq < ? AND (? IS NULL OR json_extract(e.data, '$.state') = ?)
    AND e.seq = (SELECT max(l.seq) FROM events l WHERE l.type = 'alert' AND {_SAME_ALERT.format(t="l")})
ORDER BY e.seq DESC LIMIT ?
"""


# Every transition of the alerts still open (latest transition not 'resolved'), plus the newest
# `recent` alert rows: what the alert book needs at start, however old an open alert is.
REPLAY_SQL = """
SELECT event_id, type, severity, room_id, source, occurred_at, data FROM events
WHERE seq IN (
    SELECT o.seq FROM events o WHERE o.type = 'alert' AND json_extract(o.data, '$.alert_id') IN (
        SELECT json_extract(l.data, '$.alert_id') FROM events l INDEXED BY events_type_seq
        WHERE l.type = 'alert' AND json_extract(l.data, '$.state') != 'resolved'
            AND l.seq = (SELECT max(k.seq) FROM events k WHERE k.type = 'alert'
                         AND json_extract(k.data, '$.alert_id') = json_extract(l.data, '$.alert_id'))))
OR seq IN (SELECT r.seq FROM events r INDEXED BY events_type_seq WHERE r.type = 'alert'
           ORDER BY r.seq DESC LIMIT ?)
ORDER BY seq
"""


def replay_rows(conn: sqlite3.Connection, recent: int) -> list[tuple[Any, ...]]:
    """Rows (event_id, type, severity, room_id, source, occurred_at, data) to rebuild the alert book."""
    return list(conn.execute(REPLAY_SQL, [recent]))


def _transition(seq: int, severity: str, room_id: str | None, ts: float, raw: str) -> dict[str, Any]:
    data = json.loads(raw)
    return {"seq": seq, "action": data.get("action"), "actor": data.get("actor"),
            "note": data.get("note", ""), "ts": ts, "state": data.get("state"), "severity": severity,
            "room_id": room_id, "data": data}


def alert_history(conn: sqlite3.Connection, alert_id: str) -> list[dict[str, Any]]:
    """Every stored transition of one alert, in seq order (empty when unknown)."""
    return [_transition(*row) for row in conn.execute(HISTORY_SQL, [alert_id])]


def alert_page(conn: sqlite3.Connection, limit: int, before_seq: int | None,
               state: str | None) -> list[dict[str, Any]]:
    """Up to limit alerts as their latest transition, newest first, below before_seq, in state."""
    rows = conn.execute(PAGE_SQL, [MAX_SEQ if before_seq is None else before_seq, state, state, limit])
    out = []
    for seq, severity, room_id, ts, raw, raised_at, acknowledged_by, acknowledged_at in rows:
        row = _transition(seq, severity, room_id, ts, raw)
        # No stored raise (a row this code did not write): the latest row's time is all there is.
        row.update(raised_at=ts if raised_at is None else raised_at,
                   acknowledged_by=acknowledged_by, acknowledged_at=acknowledged_at)
        out.append(row)
    return out
