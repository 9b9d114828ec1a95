"""PJLink projectors: status polled into readings and availability; power and input on command."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edge.bus import Bus
from edge.clock import Clock
from edge.command_args import Args, InputArgs, PowerArgs
from edge.config_devices import PjlinkDeviceConfig
from edge.errors import CommandFailed
from edge.events import Reading
from edge.sources.availability import Availability
from firmware_bridge.errors import PjlinkAuthError, PjlinkCommandError, PjlinkError, PjlinkTimeout
from firmware_bridge.pjlink.client import PjlinkClient, ProjectorStatus

log = logging.getLogger(__name__)

ERROR_LEVELS = {"ok": 0, "warning": 1, "error": 2}


def status_readings(status: ProjectorStatus) -> list[tuple[str, float, str]]:
    """Metric, value and unit of each reading a projector status yields."""
    out: list[tuple[str, float, str]] = [("power", float(status.power in ("on", "warming")), "")]
    if status.lamp_hours is not None:
        out.append(("lamp_hours", float(status.lamp_hours), "h"))
    worst = max((ERROR_LEVELS.get(level, 2) for level in status.errors.values()), default=0)
    out.append(("projector_error", float(worst), ""))
    return out


class ProjectorSource:
    """Service: poll one projector; run its power and input commands."""

    def __init__(self, config: PjlinkDeviceConfig, password: str | None, bus: Bus,
                 clock: Clock) -> None:
        self.config = config
        self.name = f"pjlink:{config.id}"
        self._bus = bus
        self._clock = clock
        self._password = password
        self.client = self._new_client()
        self.availability = Availability(config.id, config.room_id, bus, clock)
        self.failures = 0
        self.last_status: ProjectorStatus | None = None
        self._poll_now = asyncio.Event()

    def _new_client(self) -> PjlinkClient:
        return PjlinkClient(self.config.host, self.config.port, self._password, self.config.timeout_s)

    async def poll(self) -> None:
        """Read the status once; publish readings, or count a failed poll."""
        try:
            status = await self.client.status()
        except PjlinkError as err:
            self.failures += 1
            reason = "authentication refused" if isinstance(err, PjlinkAuthError) else str(err)
            if self.failures >= self.config.missed_polls:
                self.availability.lost(reason)
            return
        self.failures = 0
        self.last_status = status
        self.availability.seen(f"power {status.power}")
        now = self._clock.now()
        for metric, value, unit in status_readings(status):
            self._bus.publish(Reading(self.config.id, metric, value, unit, now, self.config.room_id))

    async def run(self, ready: Callable[[], None]) -> None:
        """Poll every poll_s (and right after a command) until cancelled."""
        # A fresh client per run: a restarted service must not inherit a closed one.
        self.client = self._new_client()
        ready()
        try:
            while True:
                await self.poll()
                self._poll_now.clear()
                try:
                    async with asyncio.timeout(self.config.poll_s):
                        await self._poll_now.wait()
                except TimeoutError:
                    pass
        finally:
            await self.client.close()

    async def execute(self, action: str, args: Args) -> dict[str, Any]:
        """Switch power or input; CommandFailed with the projector's reason when it refuses."""
        try:
            if isinstance(args, PowerArgs):
                await (self.client.power_on() if args.state == "on" else self.client.power_off())
            elif isinstance(args, InputArgs):
                await self.client.set_input(args.source)
            else:
                raise CommandFailed("failed", f"no projector command for {action!r}")
        except PjlinkTimeout as err:
            raise CommandFailed("timeout", str(err)) from err
        except PjlinkAuthError as err:
            raise CommandFailed("failed", f"authentication refused: {err}") from err
        except PjlinkCommandError as err:
            raise CommandFailed("failed", f"projector refused: {err}") from err
        except (PjlinkError, ValueError) as err:
            raise CommandFailed("failed", str(err)) from err
        self._poll_now.set()
        return {}
