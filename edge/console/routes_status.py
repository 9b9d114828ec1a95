"""Console status routes: the uplink to the campus platform."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from edge.console.auth import Viewer
from edge.console.context import Ctx

router = APIRouter(prefix="/api")


@router.get("/uplink")
async def uplink_status(who: Viewer, ctx: Ctx) -> dict[str, Any]:
    """Whether the campus platform is reachable, and what waits in the outbox for it."""
    if ctx.uplink is None:
        return {"configured": False}
    return {"configured": True, **ctx.uplink.as_dict()}
