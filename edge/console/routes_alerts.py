"""Console alert routes: open list, stored history, one alert, acknowledge, resolve; safety snapshots."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from edge.alerts.lifecycle import Alert, AlertActionRefused, AlertBook, AlertState
from edge.console.auth import Security, Viewer
from edge.console.context import ConsoleContext, Ctx
from edge.events import Severity
from edge.store.alert_queries import MAX_SEQ

router = APIRouter(prefix="/api")
NOTE_MAX = 1000
PAGE_MAX = 200
ALERT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")  # uuid-ish; anything else is no alert of ours


class NoteBody(BaseModel):
    """What a person writes when acknowledging or resolving."""

    note: str = Field("", max_length=NOTE_MAX)


def alert_json(alert: Alert) -> dict[str, Any]:
    """The console's view of one alert."""
    return {
        "alert_id": alert.alert_id, "key": alert.key, "kind": alert.kind,
        "severity": str(alert.severity), "room_id": alert.room_id, "title": alert.title,
        "state": str(alert.state), "raised_at": alert.raised_at, "updated_at": alert.updated_at,
        "detail": dict(alert.detail), "camera_id": alert.camera_id, "escalated": alert.escalated,
        "acknowledged_by": alert.acknowledged_by, "acknowledged_at": alert.acknowledged_at,
        "resolved_by": alert.resolved_by, "resolved_at": alert.resolved_at,
    }


def open_alerts_json(ctx: ConsoleContext) -> list[dict[str, Any]]:
    """Every open alert, most severe and newest first."""
    return [alert_json(a) for a in ctx.alerts.book.open_alerts()]


@router.get("/alerts")
async def list_alerts(who: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    """The open alerts."""
    return open_alerts_json(ctx)


def stored_alert(row: Mapping[str, Any]) -> Alert:
    """An alert rebuilt from its latest stored transition (a row of Store.alert_page)."""
    data = row["data"]
    state = AlertState(row["state"])
    resolved = state is AlertState.RESOLVED  # resolving is final: the latest row is the resolve
    return Alert(str(data.get("alert_id", "")), str(data.get("key", "")), str(data.get("kind", "")),
                 Severity(row["severity"]), row["room_id"], str(data.get("title", "")), state,
                 row["raised_at"], row["ts"], dict(data.get("detail") or {}), data.get("camera_id"),
                 bool(data.get("escalated")), row["acknowledged_by"], row["acknowledged_at"],
                 row["actor"] if resolved else None, row["ts"] if resolved else None)


async def _history(ctx: ConsoleContext, alert_id: str) -> list[dict[str, Any]]:
    if not ALERT_ID.fullmatch(alert_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    rows = await ctx.store.alert_history(alert_id)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    return rows


# Declared before /alerts/{alert_id}, which would otherwise take "history" for an id.
@router.get("/alerts/history")
async def alert_history_page(
    who: Viewer, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    before_seq: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None, state: AlertState | None = None,
) -> dict[str, Any]:
    """Stored alerts (open or long resolved), newest first; pass next_before_seq back for the next page."""
    rows = await ctx.store.alert_page(limit + 1, before_seq, None if state is None else state.value)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"alerts": [alert_json(stored_alert(row)) for row in rows],
            "next_before_seq": rows[-1]["seq"] if more else None}


@router.get("/alerts/{alert_id}/history")
async def alert_history(alert_id: str, who: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    """Every transition of one alert, oldest first: who did what, when, with which note."""
    return [{"seq": r["seq"], "action": r["action"], "actor": r["actor"], "note": r["note"], "ts": r["ts"],
             "state": r["state"]} for r in await _history(ctx, alert_id)]


@router.get("/alerts/{alert_id}")
async def get_alert(alert_id: str, who: Viewer, ctx: Ctx) -> dict[str, Any]:
    """One alert: from memory while the book holds it, else rebuilt from its stored transitions."""
    alert = ctx.alerts.book.get(alert_id) if ALERT_ID.fullmatch(alert_id) else None
    if alert is None:
        # The same replay a restart runs, on a scratch book: one code path rebuilds alerts.
        book = AlertBook()
        for row in await _history(ctx, alert_id):
            book.replay(row["data"], Severity(row["severity"]), row["room_id"], row["ts"])
        alert = book.get(alert_id)
        if alert is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    return alert_json(alert)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(alert_id: str, who: Security, ctx: Ctx, body: NoteBody | None = None) -> dict[str, Any]:
    """Acknowledge an alert: someone is handling it."""
    return await _act(ctx, "ack", alert_id, who.username, (body or NoteBody()).note)


@router.post("/alerts/{alert_id}/resolve")
async def resolve(alert_id: str, who: Security, ctx: Ctx, body: NoteBody | None = None) -> dict[str, Any]:
    """Resolve an alert by hand."""
    return await _act(ctx, "resolve", alert_id, who.username, (body or NoteBody()).note)


async def _act(ctx: ConsoleContext, action: str, alert_id: str, actor: str, note: str) -> dict[str, Any]:
    if ctx.alerts.book.get(alert_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    try:
        if action == "ack":
            await ctx.alerts.acknowledge(alert_id, actor, note)
        else:
            await ctx.alerts.resolve(alert_id, actor, note)
    except AlertActionRefused as refused:
        raise HTTPException(status.HTTP_409_CONFLICT, refused.reason) from refused
    await ctx.store.append_audit(actor, f"alert.{action}", alert_id, {"note": note})
    alert = ctx.alerts.book.get(alert_id)
    # resolve() lets the book forget old resolved alerts; this one is normally still there.
    return alert_json(alert) if alert is not None else {"alert_id": alert_id, "state": "resolved"}


@router.get("/snapshots/{snapshot_id}")
async def snapshot(snapshot_id: str, who: Security, ctx: Ctx) -> FileResponse:
    """A blurred safety snapshot by its opaque id; the path always comes from the store, never the URL."""
    # path_for stats the file system (an SD card can stall): not on the event loop.
    path = await asyncio.to_thread(ctx.snapshots.path_for, snapshot_id) if ctx.snapshots is not None else None
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such snapshot")
    return FileResponse(path, media_type="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
