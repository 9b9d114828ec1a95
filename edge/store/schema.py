"""Schema versions of the gateway database, applied forward in order."""

from __future__ import annotations

# Each entry moves the schema from version N to N+1. Never edit a released entry:
# add a new one. Every step runs in one transaction together with its version row.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "readings, events and the per-gateway event sequence",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO counters (name, value) VALUES ('event_seq', 0);
        CREATE TABLE readings (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            device_id TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            unit TEXT NOT NULL,
            room_id TEXT
        );
        CREATE INDEX readings_ts ON readings (ts);
        CREATE INDEX readings_device_metric_ts ON readings (device_id, metric, ts);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            severity TEXT NOT NULL,
            room_id TEXT,
            source TEXT NOT NULL,
            occurred_at REAL NOT NULL,
            stored_at REAL NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX events_occurred_at ON events (occurred_at);
        """,
    ),
    (
        "outbox and append-only, hash-chained audit log",
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            msg_class TEXT NOT NULL,
            seq INTEGER,
            topic TEXT NOT NULL,
            payload TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            delivered_at REAL
        );
        CREATE INDEX outbox_pending ON outbox (msg_class, delivered_at, seq, id);
        INSERT INTO outbox (msg_class, seq, topic, payload, bytes, created_at)
            SELECT 'event', seq, 'event', p, length(CAST(p AS BLOB)), stored_at FROM (
                SELECT seq, stored_at, json_object(
                    'event_id', event_id, 'seq', seq, 'type', type, 'severity', severity,
                    'room_id', room_id, 'source', source, 'occurred_at', occurred_at,
                    'data', json(data)) AS p
                FROM events);
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
        """,
    ),
    (
        "commands: one row per command_id, so a redelivered command never runs twice",
        """
        CREATE TABLE commands (
            command_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            action TEXT NOT NULL,
            args TEXT NOT NULL,
            actor TEXT NOT NULL,
            received_at REAL NOT NULL,
            status TEXT NOT NULL,
            result TEXT,
            finished_at REAL
        );
        CREATE INDEX commands_received_at ON commands (received_at);
        """,
    ),
    (
        "users: local console accounts with a role and an argon2 password hash",
        """
        CREATE TABLE users (
            username TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('viewer', 'security', 'operator', 'admin')),
            password_hash TEXT NOT NULL,
            created_at REAL,
            updated_at REAL,
            disabled INTEGER DEFAULT 0
        );
        """,
    ),
    (
        "alert history: events by type and seq; alert transitions by alert_id",
        # Queries must say `type = 'alert'` literally (not a parameter) and the same
        # json_extract expression, or SQLite cannot use the partial index.
        """
        CREATE INDEX events_type_seq ON events (type, seq);
        CREATE INDEX events_alert_id ON events (json_extract(data, '$.alert_id'), seq)
            WHERE type = 'alert';
        """,
    ),
    (
        "outbox: indexes by class, creation and expiry; row and byte totals per class in counters",
        # Delivered rows are deleted from now on (the events table keeps the events), so any row an
        # older release marked delivered goes; the totals start from the rows that remain.
        """
        DROP INDEX outbox_pending;
        DELETE FROM outbox WHERE delivered_at IS NOT NULL;
        CREATE INDEX outbox_class_id ON outbox (msg_class, id);
        CREATE INDEX outbox_class_created ON outbox (msg_class, created_at);
        CREATE INDEX outbox_expires ON outbox (expires_at) WHERE expires_at IS NOT NULL;
        DELETE FROM counters WHERE name >= 'outbox.' AND name < 'outbox/';
        INSERT INTO counters (name, value)
            SELECT 'outbox.rows.' || msg_class, count(*) FROM outbox GROUP BY msg_class;
        INSERT INTO counters (name, value)
            SELECT 'outbox.bytes.' || msg_class, sum(bytes) FROM outbox GROUP BY msg_class;
        """,
    ),
    (
        "audit retention: deletes below the cutoff retention records, chain anchored; outbox recount",
        # The job writes meta 'audit.prune_before' and 'audit.anchor' (the hash of the newest row it
        # deleted) in the same transaction as the delete, and removes the cutoff again before commit;
        # without the key every delete is refused as before, and rows younger than 180 days (six
        # months, the Cybersecurity Law's log retention) are refused even with it. The outbox totals are
        # counted again from the rows, so a database restored or edited by hand starts out agreeing.
        """
        DROP TRIGGER audit_no_delete;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            WHEN NOT (OLD.ts < coalesce((SELECT CAST(value AS REAL) FROM meta
                                         WHERE key = 'audit.prune_before'), -1)
                      AND OLD.ts < CAST(strftime('%s', 'now') AS REAL) - 180 * 86400)
            BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
        DELETE FROM counters WHERE name >= 'outbox.rows.' AND name < 'outbox.rows/';
        DELETE FROM counters WHERE name >= 'outbox.bytes.' AND name < 'outbox.bytes/';
        INSERT INTO counters (name, value)
            SELECT 'outbox.rows.' || msg_class, count(*) FROM outbox GROUP BY msg_class;
        INSERT INTO counters (name, value)
            SELECT 'outbox.bytes.' || msg_class, sum(bytes) FROM outbox GROUP BY msg_class;
        """,
    ),
]

LATEST_VERSION = len(MIGRATIONS)
