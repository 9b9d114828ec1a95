"""Live alert updates as Server-Sent Events: the open alerts first, then every transition."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from edge.alerts.service import ALERT_EVENT
from edge.bus import DropPolicy
from edge.console.auth import Viewer
from edge.console.context import ConsoleContext, Ctx
from edge.console.routes_alerts import open_alerts_json
from edge.events import Envelope

router = APIRouter(prefix="/api")
MAX_STREAMS = 50  # a classroom gateway has a handful of guards, not hundreds of tabs
QUEUE = 1000


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE message (json.dumps never emits a raw newline, so one data line is enough)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def transition_json(envelope: Envelope) -> dict[str, Any]:
    """An alert transition as sent to the console."""
    event = envelope.event
    return {**event.data, "seq": envelope.seq, "severity": str(event.severity), "room_id": event.room_id,
            "occurred_at": event.occurred_at}


async def alert_stream(ctx: ConsoleContext, token: str) -> AsyncIterator[bytes]:
    """The open alerts, then each alert transition, until the client leaves or its session ends."""
    # Subscribed before reading the book: a transition in between is sent twice, never lost.
    sub = ctx.bus.subscribe(f"console-stream-{secrets.token_hex(4)}", (Envelope,), maxsize=QUEUE,
                            policy=DropPolicy.DROP_OLDEST)
    ctx.streams += 1
    try:
        yield frame("snapshot", open_alerts_json(ctx))
        dropped = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ctx.keepalive_s):
                    await sub.wait()
            if ctx.sessions.get(token, touch=False) is None:
                return  # logged out or expired: a stream must not outlive its session
            events = sub.take(QUEUE)
            if sub.stats.dropped != dropped:
                # A slow client lost transitions: a fresh full picture beats a gap.
                dropped = sub.stats.dropped
                yield frame("snapshot", open_alerts_json(ctx))
                continue
            if not events:
                yield b": keepalive\n\n"  # keeps proxies and the browser from timing out
            for env in events:
                if isinstance(env, Envelope) and env.event.type == ALERT_EVENT:
                    yield frame("alert", transition_json(env), env.seq)
    finally:
        sub.close()
        ctx.streams -= 1


@router.get("/stream")
async def stream(who: Viewer, ctx: Ctx) -> StreamingResponse:
    """Server-Sent Events: `snapshot` (open alerts) on connect, then `alert` per transition."""
    if ctx.streams >= MAX_STREAMS:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "too many live streams")
    return StreamingResponse(alert_stream(ctx, who.session.token), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
