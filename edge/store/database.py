"""The synchronous SQLite layer: connection set-up, migrations and every statement."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.errors import SchemaTooNew, StoreError
from edge.events import Envelope, Reading, SafetyEvent, Severity
from edge.store import alert_queries, outbox, outbox_telemetry, retention
from edge.store.schema import LATEST_VERSION, MIGRATIONS
from edge.users import LastAdmin, Role, StoredUser, UnknownUser, User, UserExists

GENESIS_HASH = "0" * 64


def event_record(event: SafetyEvent, seq: int) -> dict[str, Any]:
    """Return the JSON-ready form of a stored event (also the outbox payload)."""
    return {
        "event_id": event.event_id,
        "seq": seq,
        "type": event.type,
        "severity": str(event.severity),
        "room_id": event.room_id,
        "source": event.source,
        "occurred_at": event.occurred_at,
        "data": event.data,
    }


class Database:
    """One SQLite connection; every method must run on the store's own thread."""

    def __init__(self, path: Path, target_version: int = LATEST_VERSION) -> None:
        try:
            conn = sqlite3.connect(str(path), timeout=10.0)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open database {path}: {err}") from err
        self.path = path
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL makes every commit durable across power loss, which events need;
        # readings drop to NORMAL for their batches (see add_readings).
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.migrate(target_version)

    def schema_version(self) -> int:
        """Return the schema version recorded in the database (0 for a new file)."""
        if "schema_version" not in self.db.table_names():
            return 0
        row = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self, target_version: int = LATEST_VERSION) -> list[int]:
        """Apply forward migrations up to target_version; return the versions applied."""
        with self.db.atomic():
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
        current = self.schema_version()
        if current > LATEST_VERSION:
            raise SchemaTooNew(current, LATEST_VERSION)
        applied = []
        for version in range(current + 1, target_version + 1):
            description, script = MIGRATIONS[version - 1]
            with self.db.atomic():
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(
                    "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                    [version, description],
                )
            applied.append(version)
        return applied

    def add_readings(self, readings: list[Reading]) -> int:
        """Insert a batch of readings in one transaction; return how many were not finite (dropped)."""
        # SQLite stores NaN as NULL, which the NOT NULL column refuses: one bad value
        # would fail the whole batch, so non-finite values are dropped and counted.
        rows = [(r.ts, r.device_id, r.metric, r.value, r.unit, r.room_id)
                for r in readings if math.isfinite(r.value)]
        # Readings are many and individually cheap: a power cut may cost the last
        # batch, never the database (WAL stays consistent with synchronous=NORMAL).
        self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.db.atomic():
                # executemany, not insert_all: this is the hottest write, and sqlite-utils'
                # per-row dict handling cost more than SQLite itself.
                self.db.conn.executemany(
                    "INSERT INTO readings (ts, device_id, metric, value, unit, room_id) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
        finally:
            self.db.execute("PRAGMA synchronous=FULL")
        return len(readings) - len(rows)

    def add_event(self, event: SafetyEvent, stored_at: float) -> Envelope:
        """Give an event the next seq, store it and queue it in the outbox, atomically."""
        return self.add_events([event], stored_at)[0]

    def add_events(self, events: list[SafetyEvent], stored_at: float) -> list[Envelope]:
        """Store events in one transaction (one fsync for all: group commit), seqs in list order."""
        if not events:
            return []
        with self.db.atomic():
            # One block of seqs, one insert per table and one totals update for the whole batch;
            # the seq counter, the events and their outbox rows commit (or roll back) together.
            last = int(self.db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'event_seq' RETURNING value",
                [len(events)]).fetchone()[0])
            event_rows: list[list[Any]] = []
            outbox_rows: list[list[Any]] = []
            nbytes = 0
            for seq, event in enumerate(events, last - len(events) + 1):
                data = json.dumps(event.data, sort_keys=True, separators=(",", ":"))
                event_rows.append([seq, event.event_id, event.type, str(event.severity), event.room_id,
                                   event.source, event.occurred_at, stored_at, data])
                payload = json.dumps(event_record(event, seq), sort_keys=True, separators=(",", ":"))
                size = len(payload.encode())
                nbytes += size
                outbox_rows.append([seq, payload, size, stored_at])
            self.db.conn.executemany(
                "INSERT INTO events (seq, event_id, type, severity, room_id, source, "
                "occurred_at, stored_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
            self.db.conn.executemany(
                "INSERT INTO outbox (msg_class, seq, topic, payload, bytes, created_at) "
                "VALUES ('event', ?, 'event', ?, ?, ?)", outbox_rows)
            outbox.count_rows(self.db.conn, "event", len(events), nbytes)
        return [Envelope(event=event, seq=row[0], stored_at=stored_at)
                for event, row in zip(events, event_rows, strict=True)]

    def append_audit(
        self, ts: float, actor: str, action: str, target: str, detail: dict[str, Any]
    ) -> int:
        """Append one audit record chained to the previous one; return its id."""
        with self.db.atomic():
            row = self.db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS_HASH
            detail_json = json.dumps(detail, sort_keys=True, separators=(",", ":"))
            digest = _audit_hash(prev, ts, actor, action, target, detail_json)
            cursor = self.db.execute(
                "INSERT INTO audit (ts, actor, action, target, detail, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [ts, actor, action, target, detail_json, prev, digest],
            )
            return int(cursor.lastrowid or 0)

    def claim_command(
        self, command_id: str, device_id: str, action: str, args: dict[str, Any], actor: str,
        ts: float,
    ) -> dict[str, Any] | None:
        """Record a command as running; if its id was seen before, return that earlier row."""
        with self.db.atomic():
            row = self.db.execute(
                "SELECT status, result, device_id FROM commands WHERE command_id = ?", [command_id]
            ).fetchone()
            if row is not None:
                return {"status": row[0], "result": json.loads(row[1]) if row[1] else None,
                        "device_id": row[2]}
            self.db.execute(
                "INSERT INTO commands (command_id, device_id, action, args, actor, received_at, "
                "status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
                [command_id, device_id, action, json.dumps(args, sort_keys=True), actor, ts],
            )
        return None

    def finish_command(self, command_id: str, status: str, result: dict[str, Any], ts: float) -> None:
        """Store a command's outcome."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE commands SET status = ?, result = ?, finished_at = ? WHERE command_id = ?",
                [status, json.dumps(result, sort_keys=True), ts, command_id],
            )

    # Users: each change and its audit record commit in one transaction, so the log
    # never misses a change nor records one that did not happen. Never audit a hash.
    def add_user(
        self, username: str, role: Role, password_hash: str, ts: float, actor: str
    ) -> None:
        """Create a user; raise UserExists if the name is taken."""
        with self.db.atomic():
            row = self.db.execute(
                "INSERT INTO users (username, role, password_hash, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING RETURNING username",
                [username, str(role), password_hash, ts, ts],
            ).fetchone()
            if row is None:
                raise UserExists(username)
            self.append_audit(ts, actor, "user.add", username, {"role": str(role)})

    def set_password(
        self, username: str, password_hash: str, ts: float, actor: str, action: str = "user.passwd"
    ) -> None:
        """Replace a user's password hash; raise UnknownUser."""
        with self.db.atomic():
            row = self.db.execute(
                "UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ? "
                "RETURNING username", [password_hash, ts, username],
            ).fetchone()
            if row is None:
                raise UnknownUser(username)
            self.append_audit(ts, actor, action, username, {})

    def remove_user(self, username: str, ts: float, actor: str) -> None:
        """Delete a user; raise UnknownUser, or LastAdmin if no enabled admin would remain."""
        with self.db.atomic():
            # Delete first, then count: the write takes SQLite's lock before the check,
            # so two concurrent removals cannot both see "one admin left".
            row = self.db.execute(
                "DELETE FROM users WHERE username = ? RETURNING role, disabled", [username]
            ).fetchone()
            if row is None:
                raise UnknownUser(username)
            if row[0] == Role.ADMIN and not row[1] and self.count_admins() == 0:
                raise LastAdmin(username)
            self.append_audit(ts, actor, "user.remove", username, {"role": row[0]})

    def get_user(self, username: str) -> StoredUser | None:
        """Return a user with its password hash, or None."""
        row = self.db.execute(
            "SELECT username, role, created_at, updated_at, disabled, password_hash "
            "FROM users WHERE username = ?", [username],
        ).fetchone()
        if row is None:
            return None
        return StoredUser(row[0], Role(row[1]), row[2], row[3], bool(row[4]), row[5])

    def list_users(self) -> list[User]:
        """Return every user by name, without password hashes."""
        rows = self.db.execute(
            "SELECT username, role, created_at, updated_at, disabled FROM users ORDER BY username"
        ).fetchall()
        return [User(r[0], Role(r[1]), r[2], r[3], bool(r[4])) for r in rows]

    def count_admins(self) -> int:
        """Return how many enabled admins exist."""
        return int(self.db.execute(
            "SELECT count(*) FROM users WHERE role = 'admin' AND coalesce(disabled, 0) = 0"
        ).fetchone()[0])

    def verify_audit(self) -> int | None:
        """Return the id of the first audit record whose chain is broken, or None."""
        # After retention pruned the oldest records the chain starts at the recorded anchor.
        prev = retention.audit_anchor(self.db.conn) or GENESIS_HASH
        for row in self.db.query("SELECT * FROM audit ORDER BY id"):
            expected = _audit_hash(
                prev, row["ts"], row["actor"], row["action"], row["target"], row["detail"]
            )
            if row["prev_hash"] != prev or row["hash"] != expected:
                return int(row["id"])
            prev = row["hash"]
        return None

    def audit_page(self, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        """Return up to limit audit records, newest first, with ids below before_id (all if None)."""
        rows = self.db.execute(
            "SELECT id, ts, actor, action, target, detail FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            [before_id if before_id is not None else 2**63 - 1, limit],
        ).fetchall()
        return [{"id": r[0], "ts": r[1], "actor": r[2], "action": r[3], "target": r[4],
                 "detail": json.loads(r[5])} for r in rows]

    def stats(self, exact: bool = True) -> dict[str, int]:
        """Return row counts and the last issued seq; exact=False estimates counts from the key span.

        A count(*) of a month of readings reads a whole index and holds the store thread meanwhile;
        the span of the integer keys costs two index lookups and is exact unless rows were deleted
        out of key order (retention keeps a few old events, and readings may arrive out of order).
        """
        if exact:
            out = {t: self.db[t].count for t in ("readings", "events", "audit")}
        else:
            out = {t: int(self.db.execute(f"SELECT coalesce(max({key}) - min({key}) + 1, 0) FROM {t}")
                          .fetchone()[0])
                   for t, key in (("readings", "id"), ("events", "seq"), ("audit", "id"))}
        # The per-class totals the outbox keeps in counters: a count(*) would scan a large backlog.
        out["outbox_pending"] = int(self.db.execute(
            "SELECT coalesce(sum(value), 0) FROM counters WHERE name LIKE 'outbox.rows.%'").fetchone()[0])
        out["last_seq"] = int(
            self.db.execute("SELECT value FROM counters WHERE name='event_seq'").fetchone()[0]
        )
        return out

    def retention_prepare(self) -> None:
        """Note the events a retention run keeps whatever their age (open alerts' transitions)."""
        with self.db.atomic():  # its own transaction: an implicit one left open would swallow later commits
            retention.prepare(self.db.conn)

    def retention_batch(self, table: str, cutoff: float, batch: int, keep_queued: bool = True) -> int:
        """Delete up to batch rows of table older than cutoff in one transaction; return how many."""
        with self.db.atomic():
            return retention.delete_batch(self.db.conn, table, cutoff, batch, keep_queued)

    def integrity_check(self) -> str:
        """Run SQLite's integrity check; 'ok' when the file is sound."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close the connection."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()

    def alert_history(self, alert_id: str) -> list[dict[str, Any]]:
        """Every stored transition of one alert, in seq order."""
        return alert_queries.alert_history(self.db.conn, alert_id)

    def alert_replay(self, recent: int) -> list[SafetyEvent]:
        """Every transition of every open alert plus the newest `recent` alert rows, in seq order."""
        return [SafetyEvent(type_, Severity(severity), occurred_at, source, room_id, json.loads(data),
                            event_id=event_id)
                for event_id, type_, severity, room_id, source, occurred_at, data
                in alert_queries.replay_rows(self.db.conn, recent)]

    def alert_page(self, limit: int, before_seq: int | None, state: str | None) -> list[dict[str, Any]]:
        """Alerts as their latest stored transition, newest first, paged by seq."""
        return alert_queries.alert_page(self.db.conn, limit, before_seq, state)

    # The uplink outbox (SQL in edge.store.outbox). Its writes commit with synchronous=NORMAL like
    # readings: kill -9 loses nothing; a power cut may undo the last batch, a delivery (sent again:
    # at-least-once) or an expiry, never the totals' agreement with the rows.
    _outbox_limits: outbox.Limits = outbox.DEFAULT_LIMITS

    def configure_outbox(self, limits: Mapping[str, tuple[int, int, float | None]]) -> None:
        """Set (max_rows, max_bytes, ttl_s) per class; unnamed classes keep OutboxConfig()'s."""
        self._outbox_limits = outbox.check_limits(limits)

    @contextmanager
    def _outbox_txn(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self.db.atomic():
                yield self.db.conn
        finally:
            self.db.execute("PRAGMA synchronous=FULL")

    def outbox_add(self, msg_class: str, payloads: list[str], created_at: float) -> int:
        """Queue occupancy/telemetry bodies in one transaction; return how many old rows the cap dropped."""
        with self._outbox_txn() as conn:
            return outbox.insert(conn, msg_class, [(p, created_at) for p in payloads], self._outbox_limits)

    def outbox_pending(self, msg_class: str, limit: int, after_id: int = 0, now: float | None = None,
                       created_before: float | None = None,
                       created_from: float | None = None) -> list[outbox.OutboxRow]:
        """Undelivered rows of a class not expired at now, id > after_id, by id, in a created_at window."""
        return outbox.pending(self.db.conn, msg_class, limit, after_id, now, created_before, created_from)

    def outbox_delivered(self, ids: list[int], ts: float) -> None:
        """Delete rows the broker acknowledged and count them delivered; unknown ids are ignored."""
        if ids:
            with self._outbox_txn() as conn:
                outbox.delivered(conn, ids, ts)

    def outbox_expire(self, now: float, chunk: int = 10_000) -> dict[str, int]:
        """Delete rows whose expires_at <= now (counted as dropped 'expired'); per-class counts."""
        total: dict[str, int] = {}
        while True:  # in chunks, so a huge expiry never holds the write lock for long
            with self._outbox_txn() as conn:
                done = outbox.expire(conn, now, chunk)
            for cls, n in done.items():
                total[cls] = total.get(cls, 0) + n
            if sum(done.values()) < chunk:
                return total

    def outbox_stats(self, now: float) -> dict[str, Any]:
        """Backlog per class (count, bytes, oldest age, caps), drops by reason, deliveries, last delivery."""
        return outbox.stats(self.db.conn, now, self._outbox_limits)

    def telemetry_aggregate(self, interval_s: float, until: float,
                            site_rooms: Mapping[str, str | None] | None = None) -> int:
        """Queue one telemetry message per device per complete interval up to until; return how many."""
        with self._outbox_txn() as conn:
            return outbox_telemetry.aggregate(conn, interval_s, until, site_rooms, self._outbox_limits)


def _audit_hash(prev: str, ts: float, actor: str, action: str, target: str, detail: str) -> str:
    material = json.dumps([prev, repr(ts), actor, action, target, detail], separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


def _statements(script: str) -> list[str]:
    """Split a migration script into statements, keeping trigger bodies whole."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
