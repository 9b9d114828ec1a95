"""Console audit log routes, admins only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from edge.console.auth import Admin
from edge.console.context import Ctx

router = APIRouter(prefix="/api")
PAGE_MAX = 500
ID_MAX = 2**63 - 1  # SQLite's integer range: a larger id would not bind


@router.get("/audit")
async def audit_log(
    who: Admin, ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> dict[str, Any]:
    """A page of the audit log, newest first; pass next_before_id as before_id for the next page."""
    # One extra row tells whether an older page exists without a count over the whole log.
    rows = await ctx.store.audit_page(limit + 1, before_id)
    entries = rows[:limit]
    more = len(rows) > limit
    return {"entries": entries, "next_before_id": entries[-1]["id"] if more else None}


@router.get("/audit/verify")
async def verify_audit(who: Admin, ctx: Ctx) -> dict[str, Any]:
    """Check the audit log's hash chain: ok, how many records, and the first broken record's id."""
    broken_at = await ctx.store.verify_audit()
    records = (await ctx.store.stats())["audit"]
    return {"ok": broken_at is None, "records": records, "broken_at": broken_at}
