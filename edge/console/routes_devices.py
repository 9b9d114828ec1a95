"""Console device routes: the device list and device control for operators."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")
