"""Run commands at most once each: persisted before they run, audited, results kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from edge.clock import Clock
from edge.command_args import Args, validate_args
from edge.errors import CommandFailed, CommandRejected, EdgeError
from edge.events import Command
from edge.store import Store
from firmware_bridge.errors import BridgeError

log = logging.getLogger(__name__)

# A source's way to carry out a validated action; returns details for the result.
DeviceExecutor = Callable[[str, Args], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command, as published and audited."""

    command_id: str
    device_id: str
    action: str
    status: str  # ok | rejected | failed | timeout | interrupted
    reason: str = ""
    detail: dict[str, Any] | None = None
    duplicate: bool = False
    finished_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready dict."""
        return asdict(self)


class CommandService:
    """The internal command API: the local topic, the console and the uplink all call submit()."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._devices: dict[str, tuple[str, DeviceExecutor | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[str] = set()

    def register(self, device_id: str, device_type: str, executor: DeviceExecutor | None) -> None:
        """Make a device known; without an executor it is read-only."""
        self._devices[device_id] = (device_type, executor)
        self._locks[device_id] = asyncio.Lock()

    def unregister(self, device_id: str) -> None:
        """Forget a device removed by a config reload: commands to it are refused as unknown."""
        self._devices.pop(device_id, None)
        self._locks.pop(device_id, None)

    def device_ids(self) -> list[str]:
        """Ids of every registered device."""
        return list(self._devices)

    def knows(self, device_id: str) -> bool:
        """True for a registered device."""
        return device_id in self._devices

    async def reject(self, command_id: str | None, device_id: str, action: str, reason: str,
                     actor: str) -> CommandResult:
        """Record and return a rejection for input that never became a command."""
        result = CommandResult(command_id or "", device_id, action, "rejected", reason,
                               finished_at=self._clock.now())
        await self._store.append_audit(actor, "command.rejected", device_id, result.as_dict())
        return result

    async def submit(self, command: Command, actor: str) -> CommandResult:
        """Validate, run once, persist and audit a command; return its result."""
        entry = self._devices.get(command.device_id)
        if entry is None:
            return await self.reject(command.command_id, command.device_id, command.action,
                                     f"unknown device {command.device_id!r}", actor)
        device_type, executor = entry
        try:
            args = validate_args(device_type, command.action, command.args)
        except CommandRejected as err:
            return await self.reject(command.command_id, command.device_id, command.action,
                                     err.reason, actor)
        if executor is None:  # a read-only type has no valid action, so this is a config bug
            return await self.reject(command.command_id, command.device_id, command.action,
                                     f"{device_type} devices are read-only", actor)
        if command.expires_at is not None and self._clock.now() > command.expires_at:
            return await self.reject(command.command_id, command.device_id, command.action,
                                     "command expired", actor)
        earlier = await self._store.claim_command(command.command_id, command.device_id,
                                                  command.action, args.model_dump(), actor)
        if earlier is not None and earlier["device_id"] != command.device_id:
            return await self.reject(command.command_id, command.device_id, command.action,
                                     f"command_id already used for device {earlier['device_id']!r}",
                                     actor)
        if earlier is not None:
            return self._repeat(command, earlier)
        await self._store.append_audit(actor, "command.received", command.device_id,
                                       {"command_id": command.command_id, "action": command.action,
                                        "args": args.model_dump()})
        self._running.add(command.command_id)
        try:
            async with self._locks[command.device_id]:
                try:
                    detail = await executor(command.action, args)
                    result = self._result(command, "ok", "", detail)
                except CommandFailed as err:
                    result = self._result(command, err.status, err.reason, None)
                except (EdgeError, BridgeError) as err:
                    # A device error the executor did not translate still gets a result.
                    result = self._result(command, "failed", str(err), None)
        finally:
            self._running.discard(command.command_id)
        await self._store.finish_command(command.command_id, result.status, result.as_dict())
        await self._store.append_audit(actor, "command.finished", command.device_id, result.as_dict())
        log.info("command %s %s on %s: %s %s", command.command_id, command.action,
                 command.device_id, result.status, result.reason)
        return result

    def _result(self, command: Command, status: str, reason: str,
                detail: dict[str, Any] | None) -> CommandResult:
        return CommandResult(command.command_id, command.device_id, command.action, status, reason,
                             detail, finished_at=self._clock.now())

    def _repeat(self, command: Command, earlier: dict[str, Any]) -> CommandResult:
        # Seen before: never run again. The earlier result is re-sent; a row still
        # 'running' means the daemon stopped mid-command, so its outcome is unknown.
        stored = earlier.get("result")
        if command.command_id in self._running:
            return CommandResult(command.command_id, command.device_id, command.action, "running",
                                 "already received and still running", duplicate=True,
                                 finished_at=self._clock.now())
        if isinstance(stored, dict):
            return CommandResult(**{**stored, "duplicate": True})
        return CommandResult(command.command_id, command.device_id, command.action,
                             "interrupted" if earlier["status"] == "running" else earlier["status"],
                             "already received; the gateway stopped before it finished",
                             duplicate=True, finished_at=self._clock.now())
