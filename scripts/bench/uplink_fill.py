"""Backlogs for the uplink bench, written through the product's own store code, and the event payload."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench.uplink_rig import GATEWAY, SITE
from edge.events import SafetyEvent, Severity
from edge.store.data_dir import prepare_data_dir
from edge.store.database import Database, event_record
from edge.store.store import DB_FILENAME, Store
from edge.uplink import contract

BATCH = 10_000


def bench_event(n: int) -> SafetyEvent:
    """The safety event the bench records (the gateway child records the same)."""
    return SafetyEvent("door_forced", Severity.CRITICAL, time.time(), "device:door1", "r1", {"n": n})


def event_payload(n: int = 1, seq: int = 1) -> bytes:
    """The bytes the uplink sends for one bench event (as UplinkSender builds them)."""
    record = event_record(bench_event(n), seq)
    message = contract.finish(json.loads(contract.dumps(record)), "event", SITE, GATEWAY, time.time(), False)
    return contract.dumps(message).encode()


def _open(data_dir: Path) -> Database:
    database = Database(prepare_data_dir(data_dir) / DB_FILENAME)
    # A fill is a bench shortcut, not the product's write path: one commit per batch, no fsync.
    database.db.execute("PRAGMA synchronous=OFF")
    return database


def fill_events(data_dir: Path, count: int) -> float:
    """Store count safety events (each with its outbox row) with Database.add_event; return events/s."""
    database = _open(data_dir)
    began = time.monotonic()
    done = 0
    while done < count:
        with database.db.atomic():  # add_event's own atomic() nests as a savepoint
            for _ in range(min(BATCH, count - done)):
                done += 1
                database.add_event(bench_event(done), time.time())
    rate = count / max(1e-9, time.monotonic() - began)
    database.db.conn.close()
    return rate


def telemetry_body(n: int) -> str:
    """One aggregated telemetry message as the intake stores it (a device with three metrics)."""
    metrics = {m: {"min": 20.0 + n % 7, "avg": 21.5, "max": 23.0, "n": 60, "unit": u}
               for m, u in (("temperature", "C"), ("humidity", "%"), ("co2", "ppm"))}
    return contract.dumps(contract.telemetry_body(f"node{n % 50}", "r1", 1_700_000_000.0 + 60 * n,
                                                  1_700_000_060.0 + 60 * n, metrics))


def fill_telemetry(data_dir: Path, count: int) -> tuple[float, int]:
    """Queue count telemetry rows with Database.outbox_add in 10k batches; (rows/s, payload bytes)."""
    database = _open(data_dir)
    database.configure_outbox({"telemetry": (2 * count + 100, 1 << 40, 3 * 86400.0)})
    began = time.monotonic()
    done, nbytes = 0, 0
    while done < count:
        bodies = [telemetry_body(done + i) for i in range(min(BATCH, count - done))]
        nbytes += sum(len(b) for b in bodies)
        database.outbox_add("telemetry", bodies, time.time())
        done += len(bodies)
    rate = count / max(1e-9, time.monotonic() - began)
    database.db.conn.close()
    return rate, nbytes


async def store_only_rate(data_dir: Path, seconds: float, producers: int) -> float:
    """Events/s that Store.add_event alone commits (fsync'd, one transaction each) with producers loops."""
    store = await Store.open(prepare_data_dir(data_dir))
    done = [0]
    end = time.monotonic() + seconds

    async def produce() -> None:
        while time.monotonic() < end:
            done[0] += 1
            await store.add_event(bench_event(done[0]))

    began = time.monotonic()
    await asyncio.gather(*(produce() for _ in range(producers)))
    rate = done[0] / (time.monotonic() - began)
    await store.close()
    return rate
