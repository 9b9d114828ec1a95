"""Console audit log routes, admins only."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")
