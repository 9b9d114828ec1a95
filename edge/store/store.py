"""The async face of the store: every call runs on one dedicated database thread."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from edge.clock import Clock, SystemClock
from edge.errors import StoreError
from edge.events import Envelope, Reading, SafetyEvent
from edge.store.database import Database
from edge.store.outbox import OutboxRow
from edge.store.schema import LATEST_VERSION
from edge.users import Role, StoredUser, User

T = TypeVar("T")

DB_FILENAME = "edge.db"


EVENT_BATCH_MAX = 500  # events per group commit at most
RETENTION_BATCH = 5000  # rows deleted per transaction by retention


class Store:
    """The gateway database; the only way any service reaches SQLite."""

    def __init__(self, executor: ThreadPoolExecutor, database: Database, clock: Clock) -> None:
        self._executor = executor
        self._db = database
        self._clock = clock
        self._closed = False
        self.path = database.path
        self.readings_dropped = 0  # not finite (NaN, inf): never stored
        self._events_waiting: list[tuple[SafetyEvent, asyncio.Future[Envelope]]] = []
        self._committer: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls, data_dir: Path, clock: Clock | None = None, target_version: int = LATEST_VERSION
    ) -> Store:
        """Open (creating and migrating as needed) the database in data_dir."""
        # One thread owns the connection: SQLite writes are serialised anyway, and
        # keeping them off the event loop is the point.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        loop = asyncio.get_running_loop()
        try:
            database = await loop.run_in_executor(
                executor, Database, data_dir / DB_FILENAME, target_version
            )
        except sqlite3.Error as err:
            executor.shutdown(wait=False)
            raise StoreError(f"cannot open {data_dir / DB_FILENAME}: {err}") from err
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, database, clock or SystemClock())

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
        # Shielded: a caller cancelled mid-write (shutdown) must not cancel the queued
        # job, or data it handed over would silently never be written.
        try:
            return await asyncio.shield(future)
        except sqlite3.Error as err:
            raise StoreError(f"{getattr(fn, '__name__', 'store call')}: {err}") from err

    async def add_readings(self, readings: list[Reading]) -> None:
        """Commit a batch of readings."""
        if readings:
            self.readings_dropped += await self._call(self._db.add_readings, readings)

    async def add_event(self, event: SafetyEvent) -> Envelope:
        """Persist a safety event (and its outbox row) durably; return it with its seq.

        Group commit: events handed in while a commit is under way wait for the next one and
        share its fsync, so a burst costs one disk flush per batch, not per event. Each caller
        still returns only after its own event is durable.
        """
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._events_waiting.append((event, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_events())
        return await asyncio.shield(future)

    async def _commit_events(self) -> None:
        while self._events_waiting:
            batch, self._events_waiting = self._events_waiting[:EVENT_BATCH_MAX], \
                self._events_waiting[EVENT_BATCH_MAX:]
            try:
                envelopes = await self._call(self._db.add_events, [e for e, _ in batch], self._clock.now())
            except (StoreError, TypeError, ValueError) as err:
                if len(batch) == 1:
                    _settle(batch[0][1], error=err)
                    continue
                # One bad event (data that is not JSON, say) must not fail its neighbours:
                # this batch is committed event by event, so only the bad one gets the error.
                for event, future in batch:
                    try:
                        (envelope,) = await self._call(self._db.add_events, [event], self._clock.now())
                    except (StoreError, TypeError, ValueError) as single:
                        _settle(future, error=single)
                    else:
                        _settle(future, envelope)
                continue
            for (_, future), envelope in zip(batch, envelopes, strict=True):
                _settle(future, envelope)

    async def append_audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> int:
        """Append a record to the hash-chained audit log."""
        return await self._call(
            self._db.append_audit, self._clock.now(), actor, action, target, detail or {}
        )

    async def claim_command(
        self, command_id: str, device_id: str, action: str, args: dict[str, Any], actor: str
    ) -> dict[str, Any] | None:
        """Record a command as running; return the earlier row if its id was seen before."""
        return await self._call(self._db.claim_command, command_id, device_id, action, args,
                                actor, self._clock.now())

    async def finish_command(self, command_id: str, status: str, result: dict[str, Any]) -> None:
        """Store a command's outcome."""
        await self._call(self._db.finish_command, command_id, status, result, self._clock.now())

    async def add_user(self, username: str, role: Role, password_hash: str, actor: str) -> None:
        """Create a user (audited); raise UserExists."""
        await self._call(self._db.add_user, username, role, password_hash, self._clock.now(), actor)

    async def set_password(
        self, username: str, password_hash: str, actor: str, action: str = "user.passwd"
    ) -> None:
        """Replace a user's password hash (audited as action); raise UnknownUser."""
        await self._call(self._db.set_password, username, password_hash, self._clock.now(), actor,
                         action)

    async def remove_user(self, username: str, actor: str) -> None:
        """Delete a user (audited); raise UnknownUser or LastAdmin."""
        await self._call(self._db.remove_user, username, self._clock.now(), actor)

    async def get_user(self, username: str) -> StoredUser | None:
        """Return a user with its password hash, or None."""
        return await self._call(self._db.get_user, username)

    async def list_users(self) -> list[User]:
        """Return every user, without password hashes."""
        return await self._call(self._db.list_users)

    async def count_admins(self) -> int:
        """Return how many enabled admins exist."""
        return await self._call(self._db.count_admins)

    async def verify_audit(self) -> int | None:
        """Return the id of the first broken audit record, or None when the chain holds."""
        return await self._call(self._db.verify_audit)

    async def audit_page(self, limit: int, before_id: int | None = None) -> list[dict[str, Any]]:
        """Return up to limit audit records, newest first, with ids below before_id."""
        return await self._call(self._db.audit_page, limit, before_id)

    async def stats(self, exact: bool = True) -> dict[str, int]:
        """Return row counts (estimated from the key span unless exact) and the last issued seq."""
        return await self._call(self._db.stats, exact)

    async def schema_version(self) -> int:
        """Return the database's schema version."""
        return await self._call(self._db.schema_version)

    async def prune(self, table: str, older_than: float, batch: int = RETENTION_BATCH,
                    keep_queued: bool = True) -> int:
        """Delete rows of a retention table older than the epoch time older_than; return how many.

        keep_queued=False (no uplink configured): events waiting in the outbox go too.
        """
        if table == "events":
            await self._call(self._db.retention_prepare)
        total = 0
        while True:
            # One transaction per batch, each its own job on the store thread: event commits
            # queued meanwhile run between two batches instead of waiting for the whole delete.
            done = await self._call(self._db.retention_batch, table, older_than, batch, keep_queued)
            total += done
            if done < batch:
                return total

    async def integrity_check(self) -> str:
        """Run SQLite's integrity check."""
        return await self._call(self._db.integrity_check)

    async def close(self) -> None:
        """Finish queued writes, checkpoint and close; safe to call twice."""
        if self._closed:
            return
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)  # events handed in are kept
        await self._call(self._db.close)
        self._closed = True
        self._executor.shutdown(wait=True)

    async def alert_history(self, alert_id: str) -> list[dict[str, Any]]:
        """Every stored transition of one alert (seq, action, actor, note, ts, state, ..., data)."""
        return await self._call(self._db.alert_history, alert_id)

    async def alert_replay(self, recent: int = 5000) -> list[SafetyEvent]:
        """The alert transitions the alert book is rebuilt from at start (all open alerts, however old)."""
        return await self._call(self._db.alert_replay, recent)

    async def alert_page(self, limit: int, before_seq: int | None = None,
                         state: str | None = None) -> list[dict[str, Any]]:
        """Up to limit alerts as their latest transition, newest first, with seq below before_seq."""
        return await self._call(self._db.alert_page, limit, before_seq, state)

    # The uplink outbox. Time arguments left out are the store clock's now.
    def configure_outbox(self, limits: Mapping[str, tuple[int, int, float | None]]) -> None:
        """Set (max_rows, max_bytes, ttl_s) per class (see edge.store.outbox.limits_of); ValueError."""
        self._db.configure_outbox(limits)  # one attribute swap: safe beside the store thread

    async def outbox_add(self, msg_class: str, payloads: list[str], created_at: float | None = None) -> int:
        """Queue occupancy or telemetry bodies; return how many oldest rows the class cap dropped."""
        return await self._call(self._db.outbox_add, msg_class, payloads,
                                self._clock.now() if created_at is None else created_at)

    async def outbox_pending(self, msg_class: str, limit: int, after_id: int = 0, now: float | None = None,
                             created_before: float | None = None,
                             created_from: float | None = None) -> list[OutboxRow]:
        """Undelivered, unexpired rows of one class with id > after_id, by id (created_at window optional)."""
        return await self._call(self._db.outbox_pending, msg_class, limit, after_id,
                                self._clock.now() if now is None else now, created_before, created_from)

    async def outbox_delivered(self, ids: list[int], ts: float | None = None) -> None:
        """After PUBACK: delete those rows and count them delivered."""
        await self._call(self._db.outbox_delivered, ids, self._clock.now() if ts is None else ts)

    async def outbox_expire(self, now: float | None = None) -> dict[str, int]:
        """Drop rows past their TTL; per-class counts."""
        return await self._call(self._db.outbox_expire, self._clock.now() if now is None else now)

    async def outbox_stats(self, now: float | None = None) -> dict[str, Any]:
        """Backlog per class, drops by reason, deliveries and the last delivery time (cheap)."""
        return await self._call(self._db.outbox_stats, self._clock.now() if now is None else now)

    async def telemetry_aggregate(self, interval_s: float, until: float,
                                  site_rooms: Mapping[str, str | None] | None = None) -> int:
        """Queue telemetry for every complete interval ending <= until; return how many messages."""
        return await self._call(self._db.telemetry_aggregate, interval_s, until, site_rooms)


def _settle(future: asyncio.Future[Envelope], result: Envelope | None = None,
            error: BaseException | None = None) -> None:
    """Hand a waiting add_event its envelope or its error (unless it gave up waiting)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)
