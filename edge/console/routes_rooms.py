"""Console rooms and cameras routes: occupancy, readings, device status, camera stills."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

from edge.console.auth import Security, Viewer
from edge.console.context import ConsoleContext, Ctx
from edge.rooms_view import RoomsView
from edge.vision.snapshots import SnapshotRefused

router = APIRouter(prefix="/api")


def _view(ctx: ConsoleContext) -> RoomsView:
    if ctx.rooms is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rooms overview not running")
    return ctx.rooms


@router.get("/rooms")
async def list_rooms(who: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    """Every room: occupancy, latest readings, device status and its cameras."""
    return _view(ctx).rooms()


@router.get("/cameras")
async def list_cameras(who: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    """Every enabled camera with its latest health figures."""
    return _view(ctx).cameras()


@router.get("/cameras/{camera_id}/still", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}})
async def camera_still(camera_id: str, who: Security, ctx: Ctx) -> Response:
    """The camera's latest frame, faces and heads blurred, as a JPEG (never stored, never cached)."""
    configured = ctx.config is not None and any(
        cam.id == camera_id and cam.enabled for cam in ctx.config.cameras)
    # The id is only ever compared with configured ids, never used as a path or key before that.
    if not configured:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such camera")
    _view(ctx)
    service = ctx.cameras.get(camera_id)
    if service is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "camera not running")
    try:
        data = await service.still()
    except SnapshotRefused as refused:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no blurred still available") from refused
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no frame from this camera yet")
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
