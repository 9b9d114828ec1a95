"""Console rooms and cameras routes: occupancy, readings, device status, camera stills."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")
