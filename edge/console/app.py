"""The console's FastAPI app: one factory, wired with the gateway's running parts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge import __version__
from edge.alerts.service import AlertService
from edge.bus import Bus
from edge.clock import Clock
from edge.commands import CommandService
from edge.config import EdgeConfig
from edge.console import (
    routes_alerts,
    routes_audit,
    routes_auth,
    routes_devices,
    routes_metrics,
    routes_openapi,
    routes_rooms,
    routes_setup,
    routes_static,
    routes_status,
    sse,
)
from edge.console.context import ConsoleContext
from edge.console.sessions import SessionTable
from edge.rooms_view import RoomsView
from edge.sources.cameras import CameraService
from edge.store import Store
from edge.uplink.metrics import UplinkMetrics
from edge.users import LoginThrottle
from edge.vision.snapshots import SnapshotStore

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Pure ASGI (no BaseHTTPMiddleware, which would buffer the SSE stream): hardening headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to every HTTP response; API answers are never cached."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in _HEADERS if n not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


BODY_MAX = 64 * 1024  # the largest console request is a login or a command: a few hundred bytes


class BodyLimit:
    """Pure ASGI: refuse request bodies over BODY_MAX with 413 before any route reads them."""

    def __init__(self, app: ASGIApp, limit: int = BODY_MAX) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer a bounded body (chunked or not), then hand it on; 413 once it passes the limit."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        chunks: list[bytes] = []
        size = int(declared) if declared.isdigit() else 0
        while size <= self.limit:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message.get("body", b""))
            size = sum(map(len, chunks))
            if not message.get("more_body", False):
                break
        if size > self.limit:
            await JSONResponse({"detail": f"request body over {self.limit} bytes"},
                               status_code=413)(scope, receive, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    *, store: Store, alerts: AlertService, bus: Bus, snapshots: SnapshotStore | None, clock: Clock,
    secure_cookies: bool = False, throttle: LoginThrottle | None = None,
    hasher: PasswordHasher | None = None, config: EdgeConfig | None = None,
    commands: CommandService | None = None, cameras: Mapping[str, CameraService] | None = None,
    rooms: RoomsView | None = None, uplink: UplinkMetrics | None = None,
    health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> FastAPI:
    """Build the console app; throttle and hasher are seams for tests."""
    # No interactive docs and no public schema: the OpenAPI document is served to signed-in
    # users only (routes_openapi), the console being a closed appliance API.
    app = FastAPI(title="campus-edge console", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.console = ConsoleContext(
        store=store, alerts=alerts, bus=bus, snapshots=snapshots, clock=clock,
        sessions=SessionTable(clock), secure_cookies=secure_cookies,
        throttle=throttle or LoginThrottle(), hasher=hasher, config=config, commands=commands,
        cameras=dict(cameras or {}), rooms=rooms, uplink=uplink, health=health,
    )
    for module in (routes_auth, routes_setup, routes_alerts, routes_rooms, routes_devices, routes_audit,
                   routes_status, routes_metrics, sse, routes_openapi, routes_static):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    return app
