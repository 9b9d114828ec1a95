"""Console metrics routes: Prometheus text at /metrics and the full health JSON at /api/status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from ipaddress import ip_address, ip_network
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from edge.console.auth import Viewer, principal
from edge.console.context import ConsoleContext, Ctx, context
from edge.prom_metrics import render

router = APIRouter()

Health = Callable[[], Awaitable[dict[str, Any]]]


def _health(ctx: ConsoleContext) -> Health:
    if ctx.health is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "health report not available")
    return ctx.health


def allowed_address(host: str | None, networks: list[str]) -> bool:
    """True when host is an IP address inside one of the networks (CIDR strings)."""
    if host is None:
        return False
    try:
        addr = ip_address(host.split("%", 1)[0])  # an IPv6 zone id is not part of the address
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return any(addr in ip_network(net, strict=False) for net in networks)


async def scraper(request: Request, ctx: Annotated[ConsoleContext, Depends(context)]) -> None:
    """Admit an allow-listed address without a session, anyone else with one (401 otherwise)."""
    if ctx.config is not None and not ctx.config.metrics.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "metrics are turned off")
    networks = ctx.config.metrics.allow if ctx.config is not None else ["127.0.0.1/32", "::1/128"]
    if allowed_address(request.client.host if request.client else None, networks):
        return
    await principal(request, ctx)  # every role may read metrics; raises 401 without a session


# Neither route is in the console's OpenAPI document: /metrics is Prometheus text, not the JSON API,
# and /api/status has no fixed model (its sections follow the gateway's parts; docs/operations.md).
@router.get("/metrics", response_class=Response, dependencies=[Depends(scraper)], include_in_schema=False)
async def metrics(ctx: Ctx) -> Response:
    """The gateway's metrics in the Prometheus text format, built from a fresh health report."""
    report = await _health(ctx)()
    return Response(render(report), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/status", include_in_schema=False)
async def full_status(who: Viewer, ctx: Ctx) -> dict[str, Any]:
    """Everything the health report knows: services, bus, cameras, devices, links, store, disk."""
    return await _health(ctx)()
