"""Console first-admin setup with the one-time token printed in the log."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")
