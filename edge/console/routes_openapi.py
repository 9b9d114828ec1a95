"""The console API's OpenAPI document, for signed-in users only (a closed appliance API)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from edge.console.auth import Viewer

router = APIRouter(prefix="/api")


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, _who: Viewer) -> dict[str, Any]:
    """FastAPI's OpenAPI description of every console route."""
    return request.app.openapi()  # type: ignore[no-any-return]
