"""What the console's routes share: the gateway's store, alerts, bus and snapshots, plus sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from argon2 import PasswordHasher
from fastapi import Depends, Request

from edge.alerts.service import AlertService
from edge.bus import Bus
from edge.clock import Clock
from edge.commands import CommandService
from edge.config import EdgeConfig
from edge.console.sessions import SessionTable
from edge.console.setup_token import SetupToken
from edge.rooms_view import RoomsView
from edge.sources.cameras import CameraService
from edge.store import Store
from edge.uplink.metrics import UplinkMetrics
from edge.users import LoginThrottle
from edge.vision.snapshots import SnapshotStore


@dataclass
class ConsoleContext:
    """Everything a console request may reach; one per app."""

    store: Store
    alerts: AlertService
    bus: Bus
    snapshots: SnapshotStore | None
    clock: Clock
    sessions: SessionTable
    secure_cookies: bool = False
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    hasher: PasswordHasher | None = None  # None: edge.users' default (tests pass a fast one)
    keepalive_s: float = 15.0
    streams: int = 0  # SSE clients connected now
    config: EdgeConfig | None = None  # rooms, devices and cameras as configured
    commands: CommandService | None = None  # device control; None: read-only console
    cameras: Mapping[str, CameraService] = field(default_factory=dict)  # running cameras by id
    uplink: UplinkMetrics | None = None  # None: no uplink configured
    rooms: RoomsView | None = None  # live rooms and cameras overview; None: those routes answer 503
    setup: SetupToken = field(default_factory=SetupToken)  # first-admin token (routes_setup)
    # The gateway's health report (edge.health_report); None: /metrics and /api/status answer 503.
    health: Callable[[], Awaitable[dict[str, Any]]] | None = None


def context(request: Request) -> ConsoleContext:
    """The console context of the app serving this request."""
    ctx: ConsoleContext = request.app.state.console
    return ctx


Ctx = Annotated[ConsoleContext, Depends(context)]  # a route's parameter type for the context
