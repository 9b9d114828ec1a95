"""Stored readings -> one outbox telemetry message per device per complete interval.

The watermark (meta 'telemetry_until', the end of the last aggregated interval) moves in the same
transaction as the messages it covers, so a crash between steps neither loses nor repeats one.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from typing import Any

from edge.store import outbox
from edge.uplink.contract import dumps, telemetry_body

WATERMARK = "telemetry_until"  # meta key
# Per call, so one call holds the store thread well under a second (events wait behind it); after
# an outage the caller calls again while it returns > 0. A single interval is never split.
MAX_INTERVALS = 1000
MAX_READINGS = 100_000

# One row per (interval k, device, metric), plus the latest reading of that group (its value is
# 'last'; its unit and room are the group's). k is clamped to the window so float rounding at a
# boundary can never put a reading in an interval outside it.
AGGREGATE_SQL = """
SELECT g.k, g.device_id, g.metric, g.mn, g.av, g.mx, g.n, l.value, l.unit, l.room_id, l.ts
FROM (SELECT max(:k0, min(:k1, CAST(ts / :i AS INTEGER))) AS k, device_id, metric,
             min(value) AS mn, avg(value) AS av, max(value) AS mx, count(*) AS n, max(ts) AS last_ts
      FROM readings WHERE ts >= :start AND ts < :end GROUP BY k, device_id, metric) AS g
JOIN readings l ON l.id = (SELECT r.id FROM readings r WHERE r.device_id = g.device_id
                           AND r.metric = g.metric AND r.ts = g.last_ts ORDER BY r.id DESC LIMIT 1)
ORDER BY g.k, g.device_id, g.metric
"""


def watermark(conn: sqlite3.Connection) -> float | None:
    """The end of the last aggregated interval, or None before the first call."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", [WATERMARK]).fetchone()
    return None if row is None else float(row[0])


def _set_watermark(conn: sqlite3.Connection, value: float) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [WATERMARK, repr(value)])


def _window(conn: sqlite3.Connection, interval_s: float, until: float, max_intervals: int,
            max_readings: int) -> tuple[float, float] | None:
    """[start, end) to aggregate now, advancing the watermark over empty stretches; None: nothing."""
    boundary = math.floor(until / interval_s) * interval_s
    mark = watermark(conn)
    if mark is None:  # first run: start here, no backfill of old history
        _set_watermark(conn, boundary)
        return None
    if boundary <= mark:
        return None
    (first,) = conn.execute("SELECT min(ts) FROM readings WHERE ts >= ?", [mark]).fetchone()
    if first is None or first >= boundary:
        # Nothing to aggregate before `boundary`: skip the empty intervals in one step.
        _set_watermark(conn, boundary)
        return None
    start = max(mark, math.floor(first / interval_s) * interval_s)
    first_end = (math.floor(start / interval_s) + 1) * interval_s
    end = min(boundary, first_end + (max_intervals - 1) * interval_s)
    row = conn.execute("SELECT ts FROM readings WHERE ts >= ? ORDER BY ts LIMIT 1 OFFSET ?",
                       [start, max_readings]).fetchone()
    if row is not None:  # stop at the boundary before the reading past the budget
        end = min(end, max(first_end, math.floor(row[0] / interval_s) * interval_s))
    return start, end


def aggregate(conn: sqlite3.Connection, interval_s: float, until: float,
              site_rooms: Mapping[str, str | None] | None, limits: outbox.Limits,
              max_intervals: int = MAX_INTERVALS, max_readings: int = MAX_READINGS) -> int:
    """Queue telemetry for complete intervals ending <= until; return how many messages."""
    if not interval_s > 0 or not math.isfinite(until):
        raise ValueError("interval_s must be > 0 and until finite")
    window = _window(conn, interval_s, until, max_intervals, max_readings)
    if window is None:
        return 0
    start, end = window
    params = {"i": interval_s, "start": start, "end": end,
              "k0": math.floor(start / interval_s), "k1": round(end / interval_s) - 1}
    devices: dict[tuple[int, str], dict[str, Any]] = {}
    for k, device, metric, mn, av, mx, n, last, unit, room, ts in conn.execute(AGGREGATE_SQL, params):
        entry = devices.setdefault((k, device), {"metrics": {}, "room": None, "ts": -math.inf})
        entry["metrics"][metric] = {"min": mn, "avg": av, "max": mx, "last": last, "count": n,
                                    "unit": unit}
        if ts >= entry["ts"]:  # the room of the device's latest reading in the interval
            entry["room"], entry["ts"] = room, ts
    items = []
    for (k, device), entry in devices.items():
        room = entry["room"] if entry["room"] is not None else (site_rooms or {}).get(device)
        lo, hi = max(k * interval_s, start), (k + 1) * interval_s
        items.append((dumps(telemetry_body(device, room, lo, hi, entry["metrics"])), hi))
    _set_watermark(conn, end)
    if items:
        outbox.insert(conn, "telemetry", items, limits)
    return len(items)
