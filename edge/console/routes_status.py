"""Console status routes: the uplink to the campus platform."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from edge.console.auth import Viewer
from edge.console.context import ConsoleContext, context

router = APIRouter(prefix="/api")
Ctx = Annotated[ConsoleContext, Depends(context)]


@router.get("/uplink")
async def uplink_status(who: Viewer, ctx: Ctx) -> dict[str, Any]:
    """Whether the campus platform is reachable, and what waits in the outbox for it."""
    if ctx.uplink is None:
        return {"configured": False}
    return {"configured": True, **ctx.uplink.as_dict()}
